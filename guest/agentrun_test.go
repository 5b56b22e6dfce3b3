package guest

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm/config"
)

func TestWithAgent(t *testing.T) {
	dir := "/run/m"
	for _, c := range []struct {
		name  string
		vsock *config.Vsock
		want  bool
		out   *config.Vsock
	}{
		{"no agent asked", nil, false, nil},
		{"agent asked", nil, true, &config.Vsock{CID: DefaultAgentCID, Socket: "/run/m/vsock.sock"}},
		{"device without a socket", &config.Vsock{CID: 7}, false, &config.Vsock{CID: 7, Socket: "/run/m/vsock.sock"}},
		{"device kept", &config.Vsock{CID: 9, Socket: "/s"}, true, &config.Vsock{CID: 9, Socket: "/s"}},
	} {
		cfg := config.Default()
		cfg.Vsock = c.vsock
		got := withAgent(cfg, c.want, dir).Vsock
		if (got == nil) != (c.out == nil) || got != nil && *got != *c.out {
			t.Errorf("%s: vsock %+v, want %+v", c.name, got, c.out)
		}
		if c.vsock != nil && c.vsock.Socket == "" && cfg.Vsock.Socket != "" {
			t.Errorf("%s: the caller's config changed", c.name)
		}
	}
}

// refusingHybrid is a hybrid vsock socket whose guest has no agent: it
// reads each CONNECT line and closes.
func refusingHybrid(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "v.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var b [32]byte
			_, _ = c.Read(b[:])
			c.Close()
		}
	}()
	return path
}

func TestMachineAgentFallsBackForTheBootItDidNotAnswer(t *testing.T) {
	cfg := config.Default()
	cfg.Vsock = &config.Vsock{CID: 3, Socket: refusingHybrid(t)}
	a := newMachineAgent(cfg)
	a.wait, a.waitUp = 200*time.Millisecond, 400*time.Millisecond
	began := time.Now()
	if _, _, ok, err := a.run(context.Background(), "true", 1); ok || err != nil {
		t.Fatalf("run without an agent: ok %v, %v; want the console to take it", ok, err)
	}
	if d := time.Since(began); d < a.wait {
		t.Fatalf("gave up after %v, before its %v", d, a.wait)
	}
	began = time.Now()
	if _, _, ok, _ := a.run(context.Background(), "true", 1); ok || time.Since(began) > 50*time.Millisecond {
		t.Fatal("the same boot tried the agent again")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, ok, err := a.run(ctx, "true", 2); !ok || err == nil {
		t.Fatalf("a new boot's run past its context: ok %v, %v", ok, err)
	}
	// A boot whose agent answered before waits longer, and falls back for
	// the one command only.
	a.upBoot = 3
	began = time.Now()
	if _, _, ok, err := a.run(context.Background(), "true", 3); ok || err != nil || time.Since(began) < a.waitUp {
		t.Fatalf("run after the agent answered: ok %v, %v after %v", ok, err, time.Since(began))
	}
	if a.downBoot == 3 {
		t.Fatal("a boot whose agent answered was given up")
	}
	if newMachineAgent(config.Default()) != nil {
		t.Fatal("an agent for a VM without a vsock device")
	}
}
