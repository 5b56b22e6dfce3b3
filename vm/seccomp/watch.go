package seccomp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// KernelLog is where the kernel writes its log records, SECCOMP_RET_LOG's
// audit records among them when no audit daemon takes them.
const KernelLog = "/dev/kmsg"

// Denied is a call outside a filter that the kernel logged.
type Denied struct {
	PID, Nr int
	Name    string
}

// ParseAudit reads a kernel log line with a seccomp audit record
// ("audit: type=1326 ... pid=123 ... syscall=41 ..."), as the kernel
// writes it for a SECCOMP_RET_LOG or a kill.
func ParseAudit(line string) (Denied, bool) {
	if !strings.Contains(line, "type=1326") {
		return Denied{}, false
	}
	d := Denied{PID: -1, Nr: -1}
	for _, field := range strings.Fields(line) {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		switch k {
		case "pid":
			d.PID = n
		case "syscall":
			d.Nr = n
		}
	}
	if d.PID < 0 || d.Nr < 0 {
		return Denied{}, false
	}
	d.Name = Name(d.Nr)
	return d, true
}

// WatchLog logs, with their number and name, the calls outside the
// filters that the kernel reports for this process, until ctx ends. It
// reads the kernel log (KernelLog, which needs CAP_SYSLOG when
// kernel.dmesg_restrict is set) from its end; where that cannot be read
// the records stay in the kernel log (dmesg) or the audit log, and
// WatchLog says so.
func WatchLog(ctx context.Context, log *slog.Logger) error {
	f, err := os.OpenFile(KernelLog, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("seccomp: read the kernel log for denied calls: %w", err)
	}
	// /dev/kmsg: seeking to the end skips the records logged before.
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return fmt.Errorf("seccomp: %s: %w", KernelLog, err)
	}
	pid := os.Getpid()
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		buf := make([]byte, 8192)
		for {
			// Each read returns one record; a record overwritten before it
			// was read gives EPIPE, and the next read goes on.
			n, err := f.Read(buf)
			if err != nil {
				if ctx.Err() != nil || !errors.Is(err, unix.EPIPE) {
					return
				}
				continue
			}
			if d, ok := ParseAudit(string(buf[:n])); ok && d.PID == pid {
				log.Warn("seccomp: a call outside the filter (allowed: --seccomp log)", "syscall", d.Nr, "name", d.Name)
			}
		}
	}()
	return nil
}
