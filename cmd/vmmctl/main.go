// Command vmmctl drives a running vmm through its API socket.
//
// Usage:
//
//	vmmctl [--api-socket PATH] [--json] [--timeout D] COMMAND [ARGS]
//
// The socket is --api-socket, else $VMM_API_SOCKET, else /tmp/vmm.sock.
// Output is readable by default and JSON with --json. Exit status: 0 on
// success, 1 when the request fails (the server's message is printed), 2 on
// misuse (unknown command, bad flags or arguments).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/config"
)

const (
	// defaultSocket is the API socket used without --api-socket and
	// $VMM_API_SOCKET; the path the project's examples use.
	defaultSocket = "/tmp/vmm.sock"
	// socketEnv names the environment variable giving the socket.
	socketEnv = "VMM_API_SOCKET"
	// defaultTimeout bounds one request; a resize waits for the guest.
	defaultTimeout = 60 * time.Second
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1
	exitMisuse  = 2
	programName = "vmmctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// env is what a command runs with: the streams, the options shared by all
// commands, and the client built from them.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	socket         string
	json           bool
	timeout        time.Duration
}

// client returns an API client for the chosen socket.
func (e *env) client() *api.Client { return api.NewClient(e.socket) }

// command is one entry of the dispatch table.
type command struct {
	name    string
	args    string // the usage line after the name
	summary string
	// run does the command with the arguments after its name.
	run func(ctx context.Context, e *env, args []string) error
}

// commands is the dispatch table, in the order usage lists them. A new
// command is one more entry; `run` is cmdRun in run.go (package lua).
func commands() []command {
	return []command{
		{"ping", "", "show the VMM's version and pid", cmdPing},
		{"info", "", "show the VM's configuration and state", cmdInfo},
		{"resize", "[--cpus N] [--memory SIZE]", "set the vCPU count and/or RAM (SIZE: bytes or K/M/G)", cmdResize},
		{"create", "FILE.json", "create a VM from a JSON VmConfig (- reads stdin)", cmdCreate},
		{"boot", "", "boot the created VM", action("boot", api.RouteBoot)},
		{"pause", "", "pause the VM's vCPUs", action("pause", api.RoutePause)},
		{"resume", "", "resume a paused VM", action("resume", api.RouteResume)},
		{"reboot", "", "reboot the VM", action("reboot", api.RouteReboot)},
		{"shutdown", "", "shut the VM down", action("shutdown", api.RouteShutdown)},
		{"power-button", "", "press the VM's ACPI power button", action("power-button", api.RoutePowerButton)},
		{"delete", "", "delete the VM", action("delete", api.RouteDelete)},
		{"shutdown-vmm", "", "make the VMM process exit", action("shutdown-vmm", api.RouteShutdownVMM)},
		{"run", runUsage, "run Lua scenarios (package lua), each with its own vmm", cmdRun},
	}
}

// usageError is misuse: it exits 2 with the usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func misuse(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run is vmmctl without os.Exit: it returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, socket: defaultSocket, timeout: defaultTimeout}
	if s := getenv(socketEnv); s != "" {
		e.socket = s
	}
	fs := e.flagSet(programName)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return exitOK
	}
	if err == nil {
		err = checkTimeout(fs)
	}
	if err != nil {
		return fail(e, misuse("%v", err))
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return fail(e, misuse("no command given"))
	}
	if rest[0] == "help" {
		printUsage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == rest[0] {
			return fail(e, c.run(ctx, e, rest[1:]))
		}
	}
	return fail(e, misuse("unknown command %q", rest[0]))
}

// flagSet is a flag set with the options every command takes, so they may
// come before or after the command name.
func (e *env) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.socket, "api-socket", e.socket, "API socket path")
	fs.BoolVar(&e.json, "json", e.json, "JSON output")
	fs.DurationVar(&e.timeout, "timeout", e.timeout, "time limit of a request")
	return fs
}

// parse parses a command's flags and checks it got exactly nargs
// arguments.
func parse(fs *flag.FlagSet, args []string, nargs int) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, misuse("usage of %s", fs.Name())
		}
		return nil, misuse("%s: %v", fs.Name(), err)
	}
	if got := fs.NArg(); got != nargs {
		if nargs == 0 {
			return nil, misuse("%s takes no arguments, got %q", fs.Name(), fs.Args())
		}
		return nil, misuse("%s takes %d argument(s), got %d", fs.Name(), nargs, got)
	}
	if err := checkTimeout(fs); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

func checkTimeout(fs *flag.FlagSet) error {
	if f := fs.Lookup("timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d <= 0 {
			return misuse("--timeout must be positive")
		}
	}
	return nil
}

// fail prints err and returns the exit status it stands for.
func fail(e *env, err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "%s: %s\n\n", programName, ue.msg)
		printUsage(e.stderr)
		return exitMisuse
	}
	var ae *api.APIError
	if errors.As(err, &ae) {
		if e.json {
			out, _ := json.Marshal(struct {
				Status   int      `json:"status"`
				Messages []string `json:"messages"`
			}{ae.Status, append([]string{}, ae.Messages...)})
			fmt.Fprintf(e.stderr, "%s\n", out)
		} else {
			fmt.Fprintf(e.stderr, "%s: %s (HTTP %d %s)\n", programName, ae.Message(), ae.Status, http.StatusText(ae.Status))
		}
		return exitFailed
	}
	if e.json {
		out, _ := json.Marshal(struct {
			Error string `json:"error"`
		}{err.Error()})
		fmt.Fprintf(e.stderr, "%s\n", out)
	} else {
		fmt.Fprintf(e.stderr, "%s: %v\n", programName, err)
	}
	return exitFailed
}

// printUsage writes the usage text.
func printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s [--api-socket PATH] [--json] [--timeout D] COMMAND [ARGS]\n\ncommands:\n", programName)
	const col = 34
	for _, c := range commands() {
		line := strings.TrimSpace(c.name + " " + c.args)
		if len(line) > col {
			fmt.Fprintf(w, "  %s\n  %-*s %s\n", line, col, "", c.summary)
			continue
		}
		fmt.Fprintf(w, "  %-*s %s\n", col, line, c.summary)
	}
	fmt.Fprintf(w, `
options (before or after the command):
  --api-socket PATH  the vmm API socket (default $%s, else %s)
  --json             print replies and errors as JSON
  --timeout D        time limit of a request (default %v)

exit status: 0 success, 1 the request failed, 2 misuse
`, socketEnv, defaultSocket, defaultTimeout)
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

func cmdPing(ctx context.Context, e *env, args []string) error {
	if _, err := parse(e.flagSet("ping"), args, 0); err != nil {
		return err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
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
	line := "vmm " + p.Version
	if p.BuildVersion != "" {
		line += " (build " + p.BuildVersion + ")"
	}
	if p.Pid != 0 {
		line += fmt.Sprintf(", pid %d", p.Pid)
	}
	if len(p.Features) > 0 {
		line += ", features: " + strings.Join(p.Features, ", ")
	}
	_, err = fmt.Fprintln(e.stdout, line)
	return err
}

func cmdInfo(ctx context.Context, e *env, args []string) error {
	if _, err := parse(e.flagSet("info"), args, 0); err != nil {
		return err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
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
	_, err := io.WriteString(e.stdout, formatInfo(info))
	return err
}

// formatInfo renders vm.info for people.
func formatInfo(info vm.Info) string {
	var b strings.Builder
	c := info.Config
	row := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "%-11s %s\n", k+":", fmt.Sprintf(format, args...))
	}
	row("state", "%s", info.State)
	row("vcpus", "%d (boot %d, max %d)", info.ActiveVCPUs, c.CPUs.BootVCPUs, c.CPUs.MaxVCPUs)
	mem := fmt.Sprintf("%s (configured %s", formatSize(info.MemoryActualSize), formatSize(c.Memory.Size))
	if c.Memory.HotplugSize > 0 {
		mem += ", hotplug " + formatSize(c.Memory.HotplugSize)
	}
	row("memory", "%s)", mem)
	row("kernel", "%s", orNone(c.Payload.Kernel))
	if c.Payload.Initramfs != "" {
		row("initramfs", "%s", c.Payload.Initramfs)
	}
	if c.Payload.Cmdline != "" {
		row("cmdline", "%s", c.Payload.Cmdline)
	}
	for _, d := range c.Disks {
		ro := ""
		if d.Readonly {
			ro = " (read-only)"
		}
		row("disk", "%s%s", d.Path, ro)
	}
	for _, n := range c.Net {
		row("net", "tap=%s mac=%s ip=%s mask=%s", n.Tap, n.MAC, n.IP, n.Mask)
	}
	if c.RNG != nil {
		row("rng", "%s", c.RNG.Src)
	}
	row("serial", "%s", formatConsole(c.Serial))
	row("console", "%s", formatConsole(c.Console))
	return b.String()
}

func formatConsole(cc config.Console) string {
	if cc.File != "" {
		return fmt.Sprintf("%s %s", cc.Mode, cc.File)
	}
	return orNone(string(cc.Mode))
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatSize renders bytes with the largest binary unit that divides them.
func formatSize(n uint64) string {
	for _, u := range []struct {
		size uint64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

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

// action is a command that sends one body-less PUT and prints nothing on
// success.
func action(name, route string) func(ctx context.Context, e *env, args []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if _, err := parse(e.flagSet(name), args, 0); err != nil {
			return err
		}
		ctx, cancel := e.withTimeout(ctx)
		defer cancel()
		return e.client().Call(ctx, http.MethodPut, route, nil, nil)
	}
}
