package devices

import (
	"bytes"
	"testing"

	"github.com/vmmdev/vmm/acpi"
)

// fakeIRQ counts edges.
type fakeIRQ struct{ n int }

func (f *fakeIRQ) Trigger() error { f.n++; return nil }

// fakePower records what the devices asked for.
type fakePower struct{ off, reset []string }

func (f *fakePower) PowerOff(src string) { f.off = append(f.off, src) }
func (f *fakePower) Reset(src string)    { f.reset = append(f.reset, src) }

func rd(d interface{ Read(uint64, []byte) }, off uint64) byte {
	b := []byte{0xaa}
	d.Read(off, b)
	return b[0]
}

func wr(d interface{ Write(uint64, []byte) }, off uint64, v byte) {
	d.Write(off, []byte{v})
}

func TestSerialTransmitsBytesAndSignalsTHREmpty(t *testing.T) {
	var out bytes.Buffer
	irq := &fakeIRQ{}
	s := NewSerial(0x3f8, 4, irq, &out, nil)
	for _, b := range []byte("hi\n") {
		if rd(s, uartLSR)&lsrTHRE == 0 {
			t.Fatal("THR not empty before a write")
		}
		wr(s, uartRBR, b)
	}
	if out.String() != "hi\n" {
		t.Errorf("output %q", out.String())
	}
	if irq.n != 0 {
		t.Errorf("%d interrupts with IER clear", irq.n)
	}
	wr(s, uartIER, ierTHRI)
	if irq.n != 1 {
		t.Fatalf("enabling THRI gave %d interrupts, want 1", irq.n)
	}
	if got := rd(s, uartIIR); got != iirTHRI {
		t.Errorf("IIR = %#x, want THRI", got)
	}
	if got := rd(s, uartIIR); got != iirNoInt {
		t.Errorf("IIR after acknowledging = %#x, want no interrupt", got)
	}
	wr(s, uartRBR, 'x')
	if irq.n != 2 || rd(s, uartIIR) != iirTHRI {
		t.Errorf("a write with THRI enabled: %d interrupts", irq.n)
	}
}

func TestSerialReceivesInputWithInterruptsAndBackpressure(t *testing.T) {
	irq := &fakeIRQ{}
	s := NewSerial(0x3f8, 4, irq, nil, nil)
	if n := s.Input([]byte("ab")); n != 2 {
		t.Fatalf("Input took %d", n)
	}
	if irq.n != 0 {
		t.Error("interrupt with RDI disabled")
	}
	wr(s, uartIER, ierRDI)
	if irq.n != 1 || rd(s, uartIIR) != iirRDI {
		t.Fatalf("enabling RDI with data waiting: %d interrupts", irq.n)
	}
	space := s.Space()
	if rd(s, uartLSR)&lsrDR == 0 || rd(s, uartRBR) != 'a' || rd(s, uartRBR) != 'b' {
		t.Fatal("did not read back ab")
	}
	select {
	case <-space:
	default:
		t.Error("Space not signalled after draining")
	}
	if rd(s, uartLSR)&lsrDR != 0 || rd(s, uartIIR) != iirNoInt {
		t.Error("data ready after draining")
	}
	big := make([]byte, SerialRXCapacity+10)
	if n := s.Input(big); n != SerialRXCapacity {
		t.Errorf("Input of %d bytes took %d, want %d", len(big), n, SerialRXCapacity)
	}
	if irq.n != 2 {
		t.Errorf("input with RDI enabled: %d interrupts", irq.n)
	}
}

// Linux's 8250 autoconfig: IER must keep only its low 4 bits, loopback must
// mirror MCR into MSR, and FCR enable must show FIFOs in IIR bits 7-6.
func TestSerialPassesLinuxAutoconfigProbes(t *testing.T) {
	s := NewSerial(0x3f8, 4, &fakeIRQ{}, nil, nil)
	wr(s, uartIER, 0)
	if rd(s, uartIER)&0x0f != 0 {
		t.Error("IER not cleared")
	}
	wr(s, uartIER, 0xff)
	if rd(s, uartIER) != 0x0f {
		t.Errorf("IER = %#x, want 0x0f", rd(s, uartIER))
	}
	wr(s, uartIER, 0)
	wr(s, uartMCR, mcrLoop|mcrRTS|mcrOUT2)
	if got := rd(s, uartMSR) & 0xf0; got != msrCTS|msrDCD {
		t.Errorf("loopback MSR = %#x, want 0x90", got)
	}
	wr(s, uartRBR, 'z')
	if rd(s, uartRBR) != 'z' {
		t.Error("loopback did not return the byte")
	}
	wr(s, uartMCR, mcrOUT2)
	wr(s, uartIIR, fcrEnable)
	if rd(s, uartIIR)>>6 != 3 {
		t.Error("FIFOs not reported after enabling them")
	}
	wr(s, uartLCR, lcrDLAB)
	wr(s, uartRBR, 1)
	wr(s, uartIER, 0)
	if rd(s, uartRBR) != 1 || rd(s, uartIER) != 0 {
		t.Error("divisor latch not readable")
	}
	wr(s, uartSCR, 0x5a)
	if rd(s, uartSCR) != 0x5a {
		t.Error("scratch register lost its value")
	}
}

func TestSerialDescribesItselfAsPNP0501(t *testing.T) {
	s := NewSerial(0x3f8, 4, &fakeIRQ{}, nil, nil)
	b, err := acpi.Encode(s.AML())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("COM1")) {
		t.Errorf("AML %x has no COM1", b)
	}
}

func TestI8042CommandFEResetsAndSelfTestAnswers(t *testing.T) {
	p := &fakePower{}
	k := NewI8042(p)
	cmd, data := k.Command(), k.Data()
	if rd(cmd, 0)&0x02 != 0 {
		t.Error("input buffer full: Linux's kb_wait would spin")
	}
	wr(cmd, 0, i8042CmdSelfTest)
	if rd(cmd, 0)&i8042StatusOBF == 0 || rd(data, 0) != i8042SelfTestOK {
		t.Error("self test did not answer 0x55")
	}
	wr(cmd, 0, i8042CmdWriteCTR)
	wr(data, 0, 0x65)
	wr(cmd, 0, i8042CmdReadCTR)
	if got := rd(data, 0); got != 0x65 {
		t.Errorf("CTR = %#x", got)
	}
	wr(cmd, 0, 0xff) // pulses nothing
	if len(p.reset) != 0 {
		t.Error("0xff reset the machine")
	}
	wr(cmd, 0, 0xfe)
	if len(p.reset) != 1 {
		t.Errorf("0xfe: resets %v", p.reset)
	}
}

func TestACPIPMPowersOffOnS5AndResetsOnResetValue(t *testing.T) {
	for _, c := range []struct {
		name       string
		off, v     uint8
		wantOff    int
		wantResets int
	}{
		{"S5 with SLP_EN", PMSleepControl, S5SleepType<<2 | acpi.SleepControlEnable, 1, 0},
		{"S5 without SLP_EN", PMSleepControl, S5SleepType << 2, 0, 0},
		{"S3", PMSleepControl, 3<<2 | acpi.SleepControlEnable, 0, 0},
		{"reset value", PMReset, 1, 0, 1},
		{"other value at reset", PMReset, 2, 0, 0},
		{"sleep status write", PMSleepStatus, 0x80, 0, 0},
	} {
		p := &fakePower{}
		pm := NewACPIPM(p, 1, nil)
		wr(pm, uint64(c.off), c.v)
		if len(p.off) != c.wantOff || len(p.reset) != c.wantResets {
			t.Errorf("%s: poweroffs %v resets %v", c.name, p.off, p.reset)
		}
	}
}

func TestSerialDebugStateShowsPendingInterruptAndQueuedInput(t *testing.T) {
	s := NewSerial(0x3f8, 4, &fakeIRQ{}, nil, nil)
	s.Write(uartIER, []byte{ierRDI})
	s.Input([]byte("ab"))
	want := "ier=0x1 iir=0x4 lcr=0x0 mcr=0x8 thri_pending=false rx_queued=2 line=true"
	if got := s.DebugState(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// The interrupt output is a level that the edge-triggered GSI sees rise:
// Linux's handler writes up to 16 bytes per THRE interrupt and reads IIR
// until nothing is pending, so a burst costs one edge, not one per byte,
// and a condition that arrives after the handler's last IIR read raises a
// fresh edge.
func TestSerialRaisesOneEdgePerRiseOfItsInterruptLine(t *testing.T) {
	irq := &fakeIRQ{}
	s := NewSerial(0x3f8, 4, irq, nil, nil)
	wr(s, uartIER, ierTHRI|ierRDI)
	if irq.n != 1 {
		t.Fatalf("enabling THRI: %d edges, want 1", irq.n)
	}
	// The handler: IIR says THRI (which acknowledges it), 16 bytes go out.
	if got := rd(s, uartIIR); got != iirTHRI {
		t.Fatalf("IIR = %#x, want THRI", got)
	}
	for range 16 {
		wr(s, uartRBR, 'x')
	}
	if irq.n != 2 {
		t.Errorf("a 16-byte burst: %d edges in all, want 2 (one for the burst)", irq.n)
	}
	// Input while THRI is still pending: the line is already high.
	s.Input([]byte("a"))
	if irq.n != 2 {
		t.Errorf("input while the line is high: %d edges, want 2", irq.n)
	}
	// The handler drains: RDI first, then THRI, then nothing.
	if rd(s, uartIIR) != iirRDI || rd(s, uartRBR) != 'a' || rd(s, uartIIR) != iirTHRI || rd(s, uartIIR) != iirNoInt {
		t.Fatal("IIR did not go RDI, THRI, none")
	}
	s.Input([]byte("b"))
	if irq.n != 3 {
		t.Errorf("input after the line fell: %d edges, want 3", irq.n)
	}
}
