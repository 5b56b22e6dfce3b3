package devices

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
)

// TestSerialLoopbackKeepsTheReceiveQueueBounded: a guest that writes
// without end in loopback mode (MCR bit 4) loses bytes past the receive
// capacity, as in an overrun, rather than growing the host's memory.
func TestSerialLoopbackKeepsTheReceiveQueueBounded(t *testing.T) {
	s := NewSerial(0x3f8, 4, &fakeIRQ{}, nil, nil)
	s.Write(uartMCR, []byte{mcrLoop})
	for range 3 * SerialRXCapacity {
		s.Write(uartRBR, []byte{'x'})
	}
	s.mu.Lock()
	n := len(s.rx)
	s.mu.Unlock()
	if n != SerialRXCapacity {
		t.Errorf("the UART holds %d looped back bytes, want %d", n, SerialRXCapacity)
	}
}

// FuzzLegacyDevices plays a guest reading and writing anything, at any
// offset and size, in the UART, the i8042 (both ports) and the ACPI power
// registers, with host input arriving at the UART meanwhile. Nothing
// panics; reads fill at most what was asked; the UART never holds more
// than its receive capacity; the i8042 resets only on a pulse of its reset
// line and the power registers only on their reset or S5 values.
//
//	go test -run='^$' -fuzz=FuzzLegacyDevices -fuzztime=10s ./vm/devices
func FuzzLegacyDevices(f *testing.F) {
	f.Add([]byte{0, 3, 0, 0x80, 0, 0, 0, 1, 0, 3, 0, 3, 1, 5, 1, 0})
	f.Add([]byte{2, 0, 0, 0xaa, 1, 0, 1, 0, 2, 0, 0, 0xfe, 2, 0, 0, 0x60, 1, 0, 0, 0x47})
	f.Add([]byte{3, 0, 0, 0x34, 3, 2, 0, 0x01, 4, 0, 0, 'x'})
	f.Fuzz(func(t *testing.T, ops []byte) {
		power := &fakePower{}
		var out bytes.Buffer
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		serial := NewSerial(0x3f8, 4, &fakeIRQ{}, &out, log)
		kbd := NewI8042(power)
		pm := NewACPIPM(power, 0x42, log)
		type dev interface {
			Read(uint64, []byte)
			Write(uint64, []byte)
		}
		devs := []dev{serial, kbd.Data(), kbd.Command(), pm}
		for len(ops) >= 4 {
			op, off, size, v := ops[0], uint64(ops[1]), 1<<(ops[2]%4), ops[3]
			ops = ops[4:]
			resets, offs := len(power.reset), len(power.off)
			switch op % 6 {
			case 0, 1, 2, 3:
				d := devs[op%4]
				buf := make([]byte, size+1)
				buf[0] = v
				if off&0x80 == 0 {
					d.Write(off%16, buf[:size])
				} else {
					buf[size] = 0xa5
					d.Read(off%16, buf[:size])
					if buf[size] != 0xa5 {
						t.Fatalf("device %d read past the %d bytes asked", op%4, size)
					}
				}
				pulse := op%4 == 2 && off&0x80 == 0 && v >= 0xf0 && v&1 == 0
				pmReset := op%4 == 3 && off&0x80 == 0 && off%16 == PMReset && v == 0x42
				if len(power.reset) != resets && !pulse && !pmReset {
					t.Fatalf("a reset from device %d, offset %#x, value %#x", op%4, off%16, v)
				}
				if len(power.off) != offs && !(op%4 == 3 && off%16 == PMSleepControl) {
					t.Fatalf("a power off from device %d, offset %#x, value %#x", op%4, off%16, v)
				}
			case 4, 5: // host input (Input takes what fits)
				serial.Input(bytes.Repeat([]byte{v}, int(off)*8))
			}
			serial.mu.Lock()
			n := len(serial.rx)
			serial.mu.Unlock()
			if n > SerialRXCapacity {
				t.Fatalf("the UART holds %d received bytes", n)
			}
		}
	})
}
