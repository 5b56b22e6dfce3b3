package virtio

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestEachQueueIsServedOnANamedThreadOfItsOwnSetUpFirst(t *testing.T) {
	var mu sync.Mutex
	threads := map[int]string{} // tid -> name, as each setup saw it
	setup := func() error {
		comm, err := os.ReadFile("/proc/thread-self/comm")
		if err != nil {
			return err
		}
		mu.Lock()
		threads[unix.Gettid()] = strings.TrimSpace(string(comm))
		mu.Unlock()
		return nil
	}
	m, err := NewMMIO(newTestRNG(t, nil), MMIOConfig{Base: testBase, GSI: testGSI, Memory: newFakeMemory(testRAMBase, testRAMSize),
		Interrupt: &fakeInterrupt{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), WorkerSetup: setup})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := fmt.Sprint(threads)
	var tid int
	for id, name := range threads {
		tid = id
		if name != "vq-rng-q0" || !IsWorkerThread(name) || id == unix.Getpid() {
			t.Errorf("setup ran on thread %d named %q, want a thread of its own named vq-rng-q0", id, name)
		}
	}
	mu.Unlock()
	if len(threads) != 1 {
		t.Fatalf("setup ran on %s, want once (one queue)", got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// The worker's thread ends with it.
	task := fmt.Sprintf("/proc/self/task/%d", tid)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(task); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists after Close", task)
		}
	}
}

func TestAWorkerSetupErrorFailsTheTransport(t *testing.T) {
	refused := errors.New("no filter here")
	_, err := NewMMIO(newTestRNG(t, nil), MMIOConfig{Base: testBase, GSI: testGSI, Memory: newFakeMemory(testRAMBase, testRAMSize),
		Interrupt: &fakeInterrupt{}, WorkerSetup: func() error { return refused }})
	if !errors.Is(err, refused) {
		t.Fatalf("NewMMIO: %v, want the setup's error", err)
	}
}
