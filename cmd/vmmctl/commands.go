package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
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
		if err := e.client().Call(ctx, http.MethodGet, api.RoutePing, nil, &raw); err != nil {
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
	if err := e.client().Call(ctx, http.MethodGet, api.RouteInfo, nil, &raw); err != nil {
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

// cmdResize is `vmmctl resize [--cpus N] [--memory SIZE]`.
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
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if req.DesiredVCPUs == nil && req.DesiredRAM == nil {
		return misuse("resize needs --cpus N and/or --memory SIZE")
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	return e.client().Resize(ctx, req)
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

// cmdCreate is `vmmctl create FILE.json`; the request's time starts once
// the file is read.
func cmdCreate(ctx context.Context, e *env, args []string) error {
	rest, err := parse(e.flagSet("create"), args, 1)
	if err != nil {
		return err
	}
	var data []byte
	if rest[0] == "-" {
		data, err = io.ReadAll(io.LimitReader(e.stdin, api.DefaultMaxBodyBytes+1))
	} else {
		data, err = os.ReadFile(rest[0])
	}
	if err != nil {
		return fmt.Errorf("read VM config: %w", err)
	}
	if !json.Valid(data) {
		return fmt.Errorf("%s is not valid JSON", rest[0])
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	// The file goes as is, so the server's checks (unknown fields, types)
	// apply to what the user wrote.
	return e.client().Call(ctx, http.MethodPut, api.RouteCreate, data, nil)
}

// put is a command that sends one body-less PUT to route and prints nothing
// on success.
func put(route string) func(ctx context.Context, e *env, args []string) error {
	return func(ctx context.Context, e *env, _ []string) error {
		return e.client().Call(ctx, http.MethodPut, route, nil, nil)
	}
}
