// Command vmmctl drives a running vmm through its API socket.
//
// Usage:
//
//	vmmctl [--api-socket PATH] [--json] [--timeout D] COMMAND [ARGS]
//
// Its commands and flags are ch-remote's where vmm's API has the route, so
// a ch-remote line works with the program name changed (`vmmctl
// --api-socket /tmp/ch.sock resize --cpus 4 --memory 2G`); info and ping
// print a summary unless --json asks for the server's JSON, which
// ch-remote prints.
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
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/api/http1"
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
// command is one more entry: most are requests (commands.go); `run` is
// cmdRun in run.go (package lua).
func commands() []command {
	return []command{
		request("ping", "", "show the VMM's version and pid", 0, cmdPing),
		request("info", "", "show the VM's configuration and state", 0, cmdInfo),
		{"resize", "[--cpus N] [--memory SIZE] [--balloon SIZE]", "set the vCPU count and/or RAM (SIZE: bytes or K/M/G)", cmdResize},
		{"create", "[FILE.json]", "create a VM from a JSON VmConfig (none or - reads stdin)", cmdCreate},
		request("boot", "", "boot the created VM", 0, put(api.RouteBoot)),
		request("pause", "", "pause the VM's vCPUs", 0, put(api.RoutePause)),
		request("resume", "", "resume a paused VM", 0, put(api.RouteResume)),
		request("reboot", "", "reboot the VM", 0, put(api.RouteReboot)),
		request("shutdown", "", "shut the VM down", 0, put(api.RouteShutdown)),
		request("power-button", "", "press the VM's ACPI power button", 0, put(api.RoutePowerButton)),
		request("delete", "", "delete the VM", 0, put(api.RouteDelete)),
		request("shutdown-vmm", "", "make the VMM process exit", 0, put(api.RouteShutdownVMM)),
		request("add-disk", "OPTIONS", "hot-add a disk (--disk's options: path=F,id=ID,...)", 1, addDevice(api.RouteAddDisk, config.ParseDisk)),
		request("add-net", "OPTIONS", "hot-add a net (--net's options: tap=T,mac=M,...)", 1, addDevice(api.RouteAddNet, config.ParseNet)),
		request("add-vsock", "OPTIONS", "hot-add the vsock (--vsock's options: cid=N,socket=PATH)", 1, addDevice(api.RouteAddVsock, config.ParseVsock)),
		request("remove-device", "ID", "hot-remove a device by id", 1, cmdRemoveDevice),
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
			fmt.Fprintf(e.stderr, "%s: %s (HTTP %d %s)\n", programName, ae.Message(), ae.Status, http1.StatusText(ae.Status))
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
