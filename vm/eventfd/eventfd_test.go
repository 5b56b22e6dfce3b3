package eventfd

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func newEventfd(t *testing.T) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Skip("no eventfd:", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestSignalsAddUpAndDrainClearsThem(t *testing.T) {
	fd := newEventfd(t)
	if n, err := Drain(fd); n != 0 || err != nil {
		t.Fatalf("Drain of a fresh eventfd = %d, %v; want 0, nil", n, err)
	}
	for range 3 {
		if err := Signal(fd); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := Drain(fd); n != 3 || err != nil {
		t.Fatalf("Drain after 3 signals = %d, %v; want 3, nil", n, err)
	}
	if n, err := Drain(fd); n != 0 || err != nil {
		t.Fatalf("Drain after a drain = %d, %v; want 0, nil", n, err)
	}
}

func TestSignalOfASaturatedEventfdIsNoError(t *testing.T) {
	fd := newEventfd(t)
	var max [8]byte
	binary.NativeEndian.PutUint64(max[:], 1<<64-2) // the largest count an eventfd holds
	if _, err := unix.Write(fd, max[:]); err != nil {
		t.Fatal(err)
	}
	if err := Signal(fd); err != nil {
		t.Errorf("Signal of a saturated eventfd: %v, want nil (a wake-up is pending)", err)
	}
}

func TestSignalOfAClosedDescriptorFails(t *testing.T) {
	fd := newEventfd(t)
	dup, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(dup)
	if err := Signal(dup); err == nil {
		t.Error("Signal of a closed descriptor: nil, want EBADF")
	}
}
