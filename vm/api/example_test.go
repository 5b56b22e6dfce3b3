package api_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
)

// How cmd/vmm wires the server: vmm.shutdown and SIGTERM both end the
// process the same way, and the socket is removed on the way out.
func ExampleNewServer() {
	var backend api.Backend // the *vm.VMM
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := api.NewServer("/tmp/vmm.sock", backend, api.Options{
		ShutdownVMM: stop, // vmm.shutdown: answered, then the process exits
	})
	if err != nil {
		slog.Error("api", "err", err)
		return
	}
	select {
	case <-ctx.Done():
	case <-srv.Done(): // the server failed
		slog.Error("api", "err", srv.Err())
	}
	// Shut the VM down first (backend.Delete), then close the API.
	if err := srv.Close(); err != nil {
		slog.Error("api", "err", err)
	}
}

// A client, as vmmctl and the Lua bindings use it.
func ExampleClient() {
	c := api.NewClient("/tmp/vmm.sock")
	ctx := context.Background()
	vcpus := int64(8)
	if err := c.Resize(ctx, vm.ResizeRequest{DesiredVCPUs: &vcpus}); err != nil {
		if api.IsStatus(err, 429) {
			slog.Info("a vCPU removal is still pending; try again")
		}
		return
	}
	info, err := c.Info(ctx)
	if err != nil {
		return
	}
	slog.Info("resized", "state", info.State, "vcpus", info.ActiveVCPUs)
}
