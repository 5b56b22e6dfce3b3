package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
)

func TestClientWithFakeBackend_EveryMethod(t *testing.T) {
	s, fb := startFakeServer(t, Options{Version: "v1", ShutdownVMM: func() {}})
	c := NewClient(s.SocketPath())
	ctx := context.Background()
	if p, err := c.Ping(ctx); err != nil || p.Version != "v1" {
		t.Fatalf("Ping = %+v, %v", p, err)
	}
	if info, err := c.Info(ctx); err != nil || info.State != vm.StateRunning || info.Config.CPUs.MaxVCPUs != 8 {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	cfg := config.Default()
	cfg.Payload.Kernel = "/k"
	steps := []struct {
		name string
		call func() error
	}{
		{"Create", func() error { return c.Create(ctx, cfg) }},
		{"Boot", func() error { return c.Boot(ctx) }},
		{"Pause", func() error { return c.Pause(ctx) }},
		{"Resume", func() error { return c.Resume(ctx) }},
		{"Resize", func() error { return c.Resize(ctx, vm.ResizeRequest{DesiredVCPUs: ptr(int64(4))}) }},
		{"PowerButton", func() error { return c.PowerButton(ctx) }},
		{"Reboot", func() error { return c.Reboot(ctx) }},
		{"Shutdown", func() error { return c.Shutdown(ctx) }},
		{"Delete", func() error { return c.Delete(ctx) }},
	}
	for _, st := range steps {
		if err := st.call(); err != nil {
			t.Errorf("%s: %v", st.name, err)
		}
	}
	want := []string{"Info", "Create", "Boot", "Pause", "Resume", "Resize", "PowerButton", "Reboot", "Shutdown", "Delete"}
	if got := fb.called(); !slices.Equal(got, want) {
		t.Errorf("backend calls %v, want %v", got, want)
	}
	if err := c.ShutdownVMM(ctx); err != nil {
		t.Errorf("ShutdownVMM: %v", err)
	}
}

func TestClientWithFakeBackend_ErrorRepliesAreAPIErrors(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	c := NewClient(s.SocketPath())
	ctx := context.Background()
	for _, tc := range []struct {
		method string
		err    error
		call   func() error
		status int
		kind   error
	}{
		{"Boot", fmt.Errorf("boot: %w", vm.ErrNoVM), func() error { return c.Boot(ctx) }, 404, vm.ErrNoVM},
		{"Resize", fmt.Errorf("resize: %w", vm.ErrBusy), func() error { return c.Resize(ctx, vm.ResizeRequest{}) }, 429, vm.ErrBusy},
		{"Create", fmt.Errorf("create: %w", vm.ErrInvalid), func() error { return c.Create(ctx, config.VM{}) }, 400, vm.ErrInvalid},
		{"Pause", fmt.Errorf("pause: %w", vm.ErrState), func() error { return c.Pause(ctx) }, 500, nil},
	} {
		fb.fail(tc.method, tc.err)
		err := tc.call()
		var ae *APIError
		if !errors.As(err, &ae) {
			t.Fatalf("%s: %v is not an *APIError", tc.method, err)
		}
		if ae.Status != tc.status || !IsStatus(err, tc.status) {
			t.Errorf("%s: status %d, want %d", tc.method, ae.Status, tc.status)
		}
		if len(ae.Messages) < 2 || ae.Messages[len(ae.Messages)-1] != errors.Unwrap(tc.err).Error() {
			t.Errorf("%s: messages %q do not end in the root cause", tc.method, ae.Messages)
		}
		if tc.kind != nil && !errors.Is(err, tc.kind) {
			t.Errorf("%s: errors.Is(%v, %v) is false", tc.method, err, tc.kind)
		}
	}
}

func TestAPIErrorRendering(t *testing.T) {
	e := &APIError{Status: 429, Messages: []string{"The VM could not be resized", "eject pending"}}
	if got := (&APIError{Status: 500, Messages: []string{"Error from API", "The VM could not be paused", "VM is not running"}}).Message(); got != "The VM could not be paused: VM is not running" {
		t.Errorf("Message = %q, want Cloud Hypervisor's generic head left out", got)
	}
	if got, want := e.Error(), "API error 429 Too Many Requests: The VM could not be resized: eject pending"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := (&APIError{Status: 500}).Message(); got != "Internal Server Error" {
		t.Errorf("Message() without messages = %q", got)
	}
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`["a","b"]`, []string{"a", "b"}},
		{"", nil},
		{"plain text\n", []string{"plain text"}},
		{`{"error":"x"}`, []string{`{"error":"x"}`}},
	} {
		if got := ReplyError(400, []byte(tc.body)).Messages; !slices.Equal(got, tc.want) {
			t.Errorf("ReplyError(400, %q).Messages = %q, want %q", tc.body, got, tc.want)
		}
	}
}

func TestClientDoReturnsAnErrorReplyAsStatusAndBody(t *testing.T) {
	s, _ := startFakeServer(t, Options{})
	c := NewClient(s.SocketPath())
	status, reply, err := c.Do(context.Background(), http.MethodPut, RouteResize, []byte(`{"desired_vcpus":`))
	if err != nil || status != http.StatusBadRequest || Succeeded(status) {
		t.Fatalf("Do(malformed resize) = %d, %q, %v; want 400 and no error", status, reply, err)
	}
	if msgs := ReplyError(status, reply).Messages; len(msgs) == 0 {
		t.Errorf("the 400 reply %q carries no message", reply)
	}
	status, reply, err = c.Do(context.Background(), http.MethodGet, RoutePing, nil)
	if err != nil || !Succeeded(status) || !strings.Contains(string(reply), `"version"`) {
		t.Errorf("Do(ping) = %d, %q, %v", status, reply, err)
	}
}

func TestClientWithoutServerFailsWithThePath(t *testing.T) {
	path := shortTempDir(t) + "/none.sock"
	_, err := NewClient(path).Ping(context.Background())
	var ae *APIError
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("Ping without a server: %v", err)
	}
	if got := err.Error(); !containsAll(got, path, "vmm.ping") {
		t.Errorf("error %q does not name the socket and route", got)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestPingSummaryLeavesOutWhatTheServerDidNotSay(t *testing.T) {
	for _, tc := range []struct {
		p    PingResponse
		want string
	}{
		{PingResponse{Version: "v1"}, "vmm v1"},
		{PingResponse{Version: "v1", BuildVersion: "b2", Pid: 7, Features: []string{"x", "y"}}, "vmm v1 (build b2), pid 7, features: x, y"},
	} {
		if got := tc.p.Summary(); got != tc.want {
			t.Errorf("Summary() = %q, want %q", got, tc.want)
		}
	}
}
