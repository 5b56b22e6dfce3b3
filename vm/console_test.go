package vm

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/devices"
)

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAsyncWriterDeliversEverythingByClose(t *testing.T) {
	var out syncBuffer
	w := newAsyncWriter(&out, nopLogger())
	for i := range 1000 {
		w.Write([]byte{byte('a' + i%26)})
	}
	w.Close()
	if got := out.String(); len(got) != 1000 || got[:3] != "abc" {
		t.Errorf("got %d bytes: %.10q", len(got), got)
	}
}

// blockedWriter never returns from Write until released.
type blockedWriter struct{ release chan struct{} }

func (b blockedWriter) Write(p []byte) (int, error) { <-b.release; return len(p), nil }

func TestAsyncWriterNeverBlocksTheGuestOnAStuckReader(t *testing.T) {
	bw := blockedWriter{release: make(chan struct{})}
	defer close(bw.release)
	w := newAsyncWriter(bw, nopLogger())
	done := make(chan struct{})
	go func() {
		chunk := make([]byte, 64<<10)
		for range 2 * maxPendingOutput / len(chunk) {
			w.Write(chunk)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Write blocked behind a stuck reader")
	}
}

// fakeIRQ satisfies devices.Interrupt.
type fakeIRQ struct{}

func (fakeIRQ) Trigger() error { return nil }

// readSerial reads n received bytes from s as a guest driver would.
func readSerial(s *devices.Serial, n int) string {
	var got strings.Builder
	deadline := time.Now().Add(5 * time.Second)
	for got.Len() < n && time.Now().Before(deadline) {
		b := []byte{0}
		s.Read(5, b) // LSR
		if b[0]&1 == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		s.Read(0, b) // RBR
		got.WriteByte(b[0])
	}
	return got.String()
}

func TestConsolePumpsInputIntoTheAttachedSerialPortAcrossReattach(t *testing.T) {
	pr, pw := io.Pipe()
	c, err := openConsole(serialSpec(config.Serial{Mode: config.ModeTty}), true, pr, io.Discard, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	first := devices.NewSerial(0x3f8, 4, fakeIRQ{}, nil, nil)
	c.attach(first)
	go pw.Write([]byte("ab"))
	if got := readSerial(first, 2); got != "ab" {
		t.Fatalf("first port read %q", got)
	}
	second := devices.NewSerial(0x3f8, 4, fakeIRQ{}, nil, nil)
	c.attach(second)
	go pw.Write([]byte("cd"))
	if got := readSerial(second, 2); got != "cd" {
		t.Errorf("second port read %q", got)
	}
}

func TestConsoleFileModeWritesTheFile(t *testing.T) {
	path := t.TempDir() + "/serial.log"
	c, err := openConsole(serialSpec(config.Serial{Mode: config.ModeFile, File: path}), true, nil, nil, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	c.out.Write([]byte("hello\n"))
	c.close()
	if b, err := readFile(path); err != nil || b != "hello\n" {
		t.Errorf("file has %q, %v", b, err)
	}
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
