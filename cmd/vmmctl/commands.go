package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/api/http1"
	"github.com/vmmdev/vmm/vm/config"
)

// The commands that make API requests, and what they share.

// request is a command that takes nargs arguments and no flags of its own
// and makes API requests bounded by --timeout; do gets the arguments.
func request(name, args, summary string, nargs int, do func(ctx context.Context, e *env, args []string) error) command {
	return command{name: name, args: args, summary: summary, run: func(ctx context.Context, e *env, args []string) error {
		rest, err := parse(e.flagSet(name), args, nargs)
		if err != nil {
			return err
		}
		ctx, cancel := e.withTimeout(ctx)
		defer cancel()
		return do(ctx, e, rest)
	}}
}

// withTimeout bounds one request.
func (e *env) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.timeout)
}

// printJSON writes v as indented JSON (a json.RawMessage is re-indented).
func (e *env) printJSON(v any) error {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", out)
	return err
}

// cmdPing is `vmmctl ping`.
func cmdPing(ctx context.Context, e *env, _ []string) error {
	if e.json {
		var raw json.RawMessage
		if err := e.client().Call(ctx, http1.MethodGet, api.RoutePing, nil, &raw); err != nil {
			return err
		}
		return e.printJSON(raw)
	}
	p, err := e.client().Ping(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, p.Summary())
	return err
}

// cmdInfo is `vmmctl info`.
func cmdInfo(ctx context.Context, e *env, _ []string) error {
	var raw json.RawMessage
	if err := e.client().Call(ctx, http1.MethodGet, api.RouteInfo, nil, &raw); err != nil {
		return err
	}
	if e.json {
		return e.printJSON(raw)
	}
	var info vm.Info
	if err := json.Unmarshal(raw, &info); err != nil {
		return fmt.Errorf("decode vm.info reply: %w", err)
	}
	_, err := io.WriteString(e.stdout, info.Summary())
	return err
}

// cmdResize is `vmmctl resize [--cpus N] [--memory SIZE] [--balloon
// SIZE]`, ch-remote's: the body names all three fields, null for a flag not
// given, as ch-remote sends it.
func cmdResize(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet("resize")
	var req vm.ResizeRequest
	fs.Func("cpus", "desired vCPU count", func(s string) error {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a vCPU count (a whole number, at least 1)", s)
		}
		req.DesiredVCPUs = &n
		return nil
	})
	fs.Func("memory", "desired RAM: bytes or K/M/G", func(s string) error {
		n, err := parseSize(s)
		if err != nil {
			return err
		}
		req.DesiredRAM = &n
		return nil
	})
	fs.Func("balloon", "desired balloon size: bytes or K/M/G", func(s string) error {
		n, err := config.ParseSize(s)
		if err != nil || n > math.MaxInt64 {
			return fmt.Errorf("%q is not a size", s)
		}
		b := int64(n)
		req.DesiredBalloon = &b
		return nil
	})
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if req.DesiredVCPUs == nil && req.DesiredRAM == nil && req.DesiredBalloon == nil {
		return misuse("resize needs --cpus N, --memory SIZE or --balloon SIZE")
	}
	body, err := json.Marshal(resizeBody(req))
	if err != nil {
		return err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	return e.client().Call(ctx, http1.MethodPut, api.RouteResize, body, nil)
}

// resizeBody is req with every field present, null when not asked for:
// ch-remote's VmResizeData as serde writes it.
func resizeBody(req vm.ResizeRequest) any {
	return struct {
		DesiredVCPUs   *int64 `json:"desired_vcpus"`
		DesiredRAM     *int64 `json:"desired_ram"`
		DesiredBalloon *int64 `json:"desired_balloon"`
	}{req.DesiredVCPUs, req.DesiredRAM, req.DesiredBalloon}
}

// parseSize reads a RAM size (bytes, or K/M/G binary suffixes) as the
// signed byte count vm.resize takes.
func parseSize(s string) (int64, error) {
	n, err := config.ParseSize(s)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("size %q: must be above 0", s)
	}
	if n > math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(n), nil
}

// cmdCreate is `vmmctl create [FILE.json]`, without a file (or with -)
// reading standard input, as ch-remote's; the request's time starts once
// the file is read.
func cmdCreate(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet("create")
	if err := fs.Parse(args); err != nil {
		return misuse("create: %v", err)
	}
	if fs.NArg() > 1 {
		return misuse("create takes at most 1 argument, got %d", fs.NArg())
	}
	if err := checkTimeout(fs); err != nil {
		return err
	}
	rest := []string{"-"}
	if fs.NArg() == 1 {
		rest = fs.Args()
	}
	var data []byte
	var err error
	if rest[0] == "-" {
		data, err = io.ReadAll(io.LimitReader(e.stdin, api.DefaultMaxBodyBytes+1))
	} else {
		data, err = os.ReadFile(rest[0])
	}
	if err != nil {
		return fmt.Errorf("read VM config: %w", err)
	}
	if rest[0] == "-" && len(bytes.TrimSpace(data)) == 0 {
		return misuse("create: no VM config: give a JSON file, or the JSON on standard input")
	}
	if !json.Valid(data) {
		return fmt.Errorf("%s is not valid JSON", rest[0])
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	// The file goes as is, so the server's checks (unknown fields, types)
	// apply to what the user wrote.
	return e.client().Call(ctx, http1.MethodPut, api.RouteCreate, data, nil)
}

// put is a command that sends one body-less PUT to route and prints nothing
// on success.
func put(route string) func(ctx context.Context, e *env, args []string) error {
	return func(ctx context.Context, e *env, _ []string) error {
		return e.client().Call(ctx, http1.MethodPut, route, nil, nil)
	}
}

// addDevice is `vmmctl add-disk|add-net|add-vsock OPTIONS`, ch-remote's:
// the option string of the matching command line flag (--disk, --net,
// --vsock), parsed as vmm parses the flag and sent as the device's JSON.
// A device hot-added to a running VM prints the reply, its id and PCI
// address, as JSON, as ch-remote does; a VM not booted answers 204 and
// nothing is printed.
func addDevice[T any](route string, parse func(string) (T, error)) func(ctx context.Context, e *env, args []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		dev, err := parse(args[0])
		if err != nil {
			return misuse("%v", err)
		}
		var raw json.RawMessage
		if err := e.client().Call(ctx, http1.MethodPut, route, dev, &raw); err != nil {
			return err
		}
		if len(raw) == 0 {
			return nil
		}
		return e.printJSON(raw)
	}
}

// cmdRemoveDevice is `vmmctl remove-device ID`.
func cmdRemoveDevice(ctx context.Context, e *env, args []string) error {
	return e.client().RemoveDevice(ctx, args[0])
}
