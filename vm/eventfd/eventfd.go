// Package eventfd writes and reads Linux eventfds, the wake-ups between
// vmm's threads and KVM: an irqfd raises a guest interrupt when written,
// a queue's ioeventfd or a device's own eventfd wakes its worker.
package eventfd

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// Signal adds 1 to the counter of the eventfd fd, as an ioeventfd does.
// EAGAIN, a nonblocking eventfd whose counter is saturated, is no error: a
// wake-up is pending anyway.
func Signal(fd int) error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		_, err := unix.Write(fd, one[:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return nil
		}
		return err
	}
}

// Drain reads and so clears the counter of the nonblocking eventfd fd,
// returning it: 0 when nothing was signalled (EAGAIN).
func Drain(fd int) (uint64, error) {
	var count [8]byte
	for {
		_, err := unix.Read(fd, count[:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, nil
		case err != nil:
			return 0, err
		}
		return binary.NativeEndian.Uint64(count[:]), nil
	}
}
