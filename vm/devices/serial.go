package devices

import (
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/vmmdev/vmm/acpi"
)

// 8250/16550A UART registers, as offsets from the base port (the National
// Semiconductor PC16550D datasheet; Linux's include/uapi/linux/serial_reg.h).
const (
	uartRBR = 0 // read: receive buffer; write: transmit holding (THR)
	uartIER = 1 // interrupt enable
	uartIIR = 2 // read: interrupt identification; write: FIFO control (FCR)
	uartLCR = 3 // line control
	uartMCR = 4 // modem control
	uartLSR = 5 // line status
	uartMSR = 6 // modem status
	uartSCR = 7 // scratch

	ierRDI  = 0x01 // received data available
	ierTHRI = 0x02 // transmit holding register empty
	ierRLSI = 0x04 // receiver line status
	ierMSI  = 0x08 // modem status
	ierMask = 0x0f

	iirNoInt   = 0x01
	iirMSI     = 0x00
	iirTHRI    = 0x02
	iirRDI     = 0x04
	iirFIFOsOn = 0xc0

	fcrEnable  = 0x01
	fcrClearRX = 0x02

	lcrDLAB = 0x80

	mcrDTR  = 0x01
	mcrRTS  = 0x02
	mcrOUT1 = 0x04
	mcrOUT2 = 0x08
	mcrLoop = 0x10
	mcrMask = 0x1f

	lsrDR   = 0x01
	lsrTHRE = 0x20
	lsrTEMT = 0x40

	msrCTS = 0x10
	msrDSR = 0x20
	msrRI  = 0x40
	msrDCD = 0x80
	// msrDeltaMask are the "changed since last read" bits.
	msrDeltaMask = 0x0f
)

// SerialRXCapacity is how many received bytes the UART holds before Input
// pushes back on its producer.
const SerialRXCapacity = 1024

// Serial is an 8250-compatible UART with a 16550A's FIFO flag. What the
// guest transmits goes to out at once; what Input delivers waits in a
// receive queue until the guest reads it.
type Serial struct {
	irq  Interrupt
	out  io.Writer
	log  *slog.Logger
	port uint16
	gsi  uint8

	mu        sync.Mutex
	ier       uint8
	lcr       uint8
	mcr       uint8
	msr       uint8
	scr       uint8
	dll, dlm  uint8
	fifo      bool
	thriReady bool // a THR-empty interrupt is pending
	// line is the UART's interrupt output: high while an enabled interrupt
	// is pending. The GSI is edge-triggered, so only its rise raises an
	// edge, as a real 16550 on an ISA line (and QEMU's 8250) does; Linux's
	// handler reads IIR until nothing is pending, which lowers it again.
	line      bool
	rx        []byte
	space     chan struct{} // closed and replaced when rx drains
	outFailed bool
}

// NewSerial returns a UART at port raising irq (GSI gsi, for its ACPI
// description) and writing to out (nil discards).
func NewSerial(port uint16, gsi uint8, irq Interrupt, out io.Writer, log *slog.Logger) *Serial {
	if out == nil {
		out = io.Discard
	}
	if log == nil {
		log = slog.Default()
	}
	return &Serial{
		irq: irq, out: out, log: log, port: port, gsi: gsi,
		msr:   msrDCD | msrDSR | msrCTS,
		mcr:   mcrOUT2,
		dll:   12, // 9600 baud, what firmware leaves
		space: make(chan struct{}),
	}
}

// Read reads a register.
func (s *Serial) Read(offset uint64, data []byte) {
	if len(data) == 0 {
		return
	}
	clear(data)
	s.mu.Lock()
	data[0] = s.readLocked(offset)
	rise := s.updateLineLocked() // a read only ever lowers the line
	s.mu.Unlock()
	if rise {
		s.trigger()
	}
}

// updateLineLocked sets the interrupt output from what is pending and
// reports whether it rose.
func (s *Serial) updateLineLocked() bool {
	high := s.pendingLocked() != iirNoInt
	rise := high && !s.line
	s.line = high
	return rise
}

func (s *Serial) readLocked(offset uint64) uint8 {
	switch offset {
	case uartRBR:
		if s.lcr&lcrDLAB != 0 {
			return s.dll
		}
		return s.popLocked()
	case uartIER:
		if s.lcr&lcrDLAB != 0 {
			return s.dlm
		}
		return s.ier
	case uartIIR:
		id := s.pendingLocked()
		if id == iirTHRI {
			s.thriReady = false // reading IIR acknowledges THRE
		}
		if s.fifo {
			id |= iirFIFOsOn
		}
		return id
	case uartLCR:
		return s.lcr
	case uartMCR:
		return s.mcr
	case uartLSR:
		v := uint8(lsrTHRE | lsrTEMT)
		if len(s.rx) > 0 {
			v |= lsrDR
		}
		return v
	case uartMSR:
		v := s.msr
		if s.mcr&mcrLoop != 0 {
			v = s.loopMSRLocked()
		}
		s.msr &^= msrDeltaMask
		return v
	case uartSCR:
		return s.scr
	}
	return 0
}

// loopMSRLocked is the modem status in loopback mode, where the outputs of
// the modem control register feed the inputs.
func (s *Serial) loopMSRLocked() uint8 {
	var v uint8
	if s.mcr&mcrRTS != 0 {
		v |= msrCTS
	}
	if s.mcr&mcrDTR != 0 {
		v |= msrDSR
	}
	if s.mcr&mcrOUT1 != 0 {
		v |= msrRI
	}
	if s.mcr&mcrOUT2 != 0 {
		v |= msrDCD
	}
	return v
}

// pendingLocked is the interrupt identification of the highest priority
// pending and enabled interrupt.
func (s *Serial) pendingLocked() uint8 {
	switch {
	case s.ier&ierRDI != 0 && len(s.rx) > 0:
		return iirRDI
	case s.ier&ierTHRI != 0 && s.thriReady:
		return iirTHRI
	case s.ier&ierMSI != 0 && s.msr&msrDeltaMask != 0:
		return iirMSI
	}
	return iirNoInt
}

func (s *Serial) popLocked() uint8 {
	if len(s.rx) == 0 {
		return 0
	}
	b := s.rx[0]
	s.rx = s.rx[1:]
	if len(s.rx) == 0 {
		s.rx = nil
		close(s.space)
		s.space = make(chan struct{})
	}
	return b
}

// DebugState describes the UART's registers and queues, for a state dump.
func (s *Serial) DebugState() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("ier=%#x iir=%#x lcr=%#x mcr=%#x thri_pending=%v rx_queued=%d line=%v",
		s.ier, s.pendingLocked(), s.lcr, s.mcr, s.thriReady, len(s.rx), s.line)
}

// Write writes a register.
func (s *Serial) Write(offset uint64, data []byte) {
	if len(data) == 0 {
		return
	}
	v := data[0]
	s.mu.Lock()
	var out []byte
	switch offset {
	case uartRBR:
		if s.lcr&lcrDLAB != 0 {
			s.dll = v
			break
		}
		if s.mcr&mcrLoop != 0 {
			// Looped back into the receive queue, which holds no more
			// than SerialRXCapacity: past that the byte is lost, as in
			// an overrun, so a guest cannot grow it without end.
			if len(s.rx) < SerialRXCapacity {
				s.rx = append(s.rx, v)
			}
		} else {
			out = []byte{v}
		}
		// The byte leaves at once: the holding register is empty again.
		s.thriReady = true
	case uartIER:
		if s.lcr&lcrDLAB != 0 {
			s.dlm = v
			break
		}
		old := s.ier
		s.ier = v & ierMask
		if s.ier&ierTHRI != 0 && old&ierTHRI == 0 {
			s.thriReady = true
		}
	case uartIIR: // FCR
		s.fifo = v&fcrEnable != 0
		if v&fcrClearRX != 0 && len(s.rx) > 0 {
			s.rx = nil
			close(s.space)
			s.space = make(chan struct{})
		}
	case uartLCR:
		s.lcr = v
	case uartMCR:
		s.mcr = v & mcrMask
	case uartLSR, uartMSR:
		// Read-only; factory test writes are ignored.
	case uartSCR:
		s.scr = v
	}
	rise := s.updateLineLocked()
	s.mu.Unlock()
	if out != nil {
		s.emit(out)
	}
	if rise {
		s.trigger()
	}
}

func (s *Serial) emit(b []byte) {
	if _, err := s.out.Write(b); err != nil {
		s.mu.Lock()
		first := !s.outFailed
		s.outFailed = true
		s.mu.Unlock()
		if first {
			s.log.Warn("serial output failed; later failures are not logged", "err", err)
		}
	}
}

func (s *Serial) trigger() {
	if err := s.irq.Trigger(); err != nil {
		s.log.Warn("serial interrupt", "err", err)
	}
}

// Input queues bytes received from the outside world and returns how many
// it took: fewer than len(p) when the receive queue is full. Call Space to
// wait for room.
func (s *Serial) Input(p []byte) int {
	s.mu.Lock()
	n := min(len(p), SerialRXCapacity-len(s.rx))
	s.rx = append(s.rx, p[:n]...)
	rise := s.updateLineLocked()
	s.mu.Unlock()
	if rise {
		s.trigger()
	}
	return n
}

// Space returns a channel closed once the guest has drained the receive
// queue (at once if it is empty).
func (s *Serial) Space() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rx) == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.space
}

// AML describes the port to the guest as a PNP0501 device with its I/O
// range and edge-triggered ISA interrupt.
func (s *Serial) AML() acpi.Aml {
	return acpi.Device("COM1",
		acpi.Name("_HID", acpi.EISAID("PNP0501")),
		acpi.Name("_UID", acpi.Zero),
		acpi.Name("_CRS", acpi.ResourceTemplate(
			acpi.IO{Min: s.port, Max: s.port, Align: 1, Length: 8},
			acpi.IRQNoFlags{s.gsi},
		)),
	)
}
