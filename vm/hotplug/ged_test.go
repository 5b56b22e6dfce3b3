package hotplug

import (
	"errors"
	"testing"
)

func newTestGED(t *testing.T, events uint32) (*GED, *fakeIRQ) {
	t.Helper()
	irq := &fakeIRQ{}
	g, err := NewGED(GEDConfig{Base: testGEDBase, GSI: testGEDGSI, Events: events}, irq)
	if err != nil {
		t.Fatal(err)
	}
	return g, irq
}

// readU32 reads a 32-bit register.
func readU32(dev interface{ Read(uint64, []byte) }, off uint64) uint32 {
	var b [4]byte
	dev.Read(off, b[:])
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func TestGEDWithFakeIRQTriggerSetsBitsAndRaisesTheInterrupt(t *testing.T) {
	g, irq := newTestGED(t, EventCPU|EventMemory|EventPowerButton)
	if err := g.Trigger(EventCPU); err != nil {
		t.Fatal(err)
	}
	if err := g.Trigger(EventMemory | EventPowerButton); err != nil {
		t.Fatal(err)
	}
	if irq.count != 2 {
		t.Errorf("%d interrupts, want 2", irq.count)
	}
	if got := readU32(g, GEDEventOffset); got != EventCPU|EventMemory|EventPowerButton {
		t.Errorf("event register %#x", got)
	}
	if got := readU32(g, GEDEventOffset); got != 0 {
		t.Errorf("event register %#x after a read, want cleared", got)
	}
}

func TestGEDWithFakeIRQReadClearsOnlyTheBytesRead(t *testing.T) {
	g, _ := newTestGED(t, EventCPU|EventMemory)
	if err := g.Trigger(EventCPU | EventMemory); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	g.Read(GEDEventOffset+1, b[:]) // bits 8-15: none pending
	if b[0] != 0 || g.Pending() != EventCPU|EventMemory {
		t.Errorf("read of byte 1 gave %#x, pending %#x", b[0], g.Pending())
	}
	var q [8]byte
	g.Read(GEDEventOffset, q[:])
	if q[0] != byte(EventCPU|EventMemory) || g.Pending() != 0 {
		t.Errorf("8-byte read gave % x, pending %#x", q, g.Pending())
	}
}

func TestGEDWithFakeIRQWritesAreIgnored(t *testing.T) {
	g, _ := newTestGED(t, EventCPU)
	if err := g.Trigger(EventCPU); err != nil {
		t.Fatal(err)
	}
	g.Write(GEDEventOffset, []byte{0xff, 0xff, 0xff, 0xff})
	if g.Pending() != EventCPU {
		t.Errorf("pending %#x after a write", g.Pending())
	}
}

func TestGEDWithFakeIRQRefusesEventsItWasNotConfiguredFor(t *testing.T) {
	g, irq := newTestGED(t, EventCPU)
	for _, ev := range []uint32{0, EventMemory, EventPowerButton, 1 << 7} {
		if err := g.Trigger(ev); err == nil {
			t.Errorf("Trigger(%#x) succeeded", ev)
		}
	}
	if irq.count != 0 || g.Pending() != 0 {
		t.Errorf("refused triggers raised %d interrupts, left %#x pending", irq.count, g.Pending())
	}
	if _, err := NewGED(GEDConfig{Events: 1 << 5}, irq); err == nil {
		t.Error("NewGED accepted an unknown event bit")
	}
	if _, err := NewGED(GEDConfig{Events: EventCPU}, nil); err == nil {
		t.Error("NewGED accepted a nil IRQ")
	}
}

func TestGEDWithFailingFakeIRQReportsTheErrorAndKeepsTheEvent(t *testing.T) {
	g, irq := newTestGED(t, EventPowerButton)
	irq.err = errors.New("irq line broken")
	err := g.Trigger(EventPowerButton)
	if !errors.Is(err, irq.err) {
		t.Errorf("got %v, want the IRQ's error wrapped", err)
	}
	if g.Pending() != EventPowerButton {
		t.Errorf("pending %#x, want the event kept for the next interrupt", g.Pending())
	}
}
