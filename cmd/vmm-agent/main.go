// Command vmm-agent is the project's guest agent (package guest/agent):
// the test guest's init starts "vmm-agent serve" when the VM has a
// virtio-vsock device, and the host runs commands through it over vsock.
// Its other subcommands are the guest's end of the vsock specs, since
// busybox's nc has no vsock:
//
//	vmm-agent serve [-port 1024]              run commands for the host
//	vmm-agent send [-conns N] CID PORT BYTES  connect N times to CID:PORT, send BYTES of agent.Pattern(i) on connection i (from 1)
//	vmm-agent recv [-conns N] PORT            accept N connections on PORT and read each to its end
//	vmm-agent poke [-seconds N] [-seed S]     write random values to the machine's ports and device MMIO (package guest/poke)
//
// send and recv print a line per connection, "conn=I bytes=N sha256=HEX"
// (recv numbers them in accept order), then "total bytes=N seconds=S".
// Sizes take a K, M or G suffix. It is built static (CGO_ENABLED=0).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmmdev/vmm/guest/agent"
	"github.com/vmmdev/vmm/guest/poke"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = "usage: vmm-agent serve [-port N] | send [-conns N] CID PORT BYTES | recv [-conns N] PORT | poke [-seconds N] [-seed S]"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is main without the exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	fs := flag.NewFlagSet("vmm-agent "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Uint("port", agent.Port, "vsock port to listen on")
	conns := fs.Int("conns", 1, "connections at once")
	seconds := fs.Int("seconds", 10, "poke: how long")
	seed := fs.Uint64("seed", 1, "poke: the random seed")
	if err := fs.Parse(args[1:]); err != nil {
		return exitUsage
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(uint32(*port), stderr)
	case "send":
		err = send(fs.Args(), *conns, stdout)
	case "recv":
		err = recv(fs.Args(), *conns, stdout)
	case "poke":
		_, err = poke.Run(poke.Options{Duration: time.Duration(*seconds) * time.Second, Seed: *seed, Log: stdout})
	default:
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "vmm-agent: %v\n%s\n", err, usage)
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "vmm-agent: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// usageError is a bad command line.
type usageError struct{ error }

func serve(port uint32, stderr io.Writer) error {
	ln, err := agent.ListenVsock(port)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	log.Info("vmm-agent: listening", "vsock_port", port)
	return (&agent.Server{Log: log}).Serve(ln)
}

// parseSize reads a byte count with an optional K, M or G suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, usageError{fmt.Errorf("size %q: want bytes, or a number with K, M or G", s)}
	}
	return n * mult, nil
}

func parseU32(what, s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, usageError{fmt.Errorf("%s %q: not a number", what, s)}
	}
	return uint32(n), nil
}

// result is one connection's line.
type result struct {
	line string
	err  error
}

// tally gathers the connections' results, each from a goroutine of its
// own, and the total of bytes they moved.
type tally struct {
	wg    sync.WaitGroup
	mu    sync.Mutex
	res   []result
	total int64
}

func newTally(conns int) *tally { return &tally{res: make([]result, conns)} }

// run runs connection i's fn on a goroutine and records its summary.
func (t *tally) run(i int, fn func() (*agent.Summer, error)) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		s, err := fn()
		t.res[i] = result{line: s.String(), err: err}
		t.mu.Lock()
		t.total += s.N()
		t.mu.Unlock()
	}()
}

// report waits for every connection, then prints their lines and the total.
func (t *tally) report(w io.Writer, began time.Time) error {
	t.wg.Wait()
	return report(w, t.res, t.total, began)
}

// report prints the connections' lines and the total.
func report(w io.Writer, res []result, total int64, began time.Time) error {
	var errs []error
	for i, r := range res {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("conn %d: %w", i+1, r.err))
			continue
		}
		fmt.Fprintf(w, "conn=%d %s\n", i+1, r.line)
	}
	fmt.Fprintf(w, "total bytes=%d seconds=%.3f\n", total, time.Since(began).Seconds())
	return errors.Join(errs...)
}

func send(args []string, conns int, stdout io.Writer) error {
	if len(args) != 3 || conns < 1 {
		return usageError{errors.New("send takes CID PORT BYTES and -conns of 1 or more")}
	}
	cid, err := parseU32("cid", args[0])
	if err != nil {
		return err
	}
	port, err := parseU32("port", args[1])
	if err != nil {
		return err
	}
	n, err := parseSize(args[2])
	if err != nil {
		return err
	}
	began := time.Now()
	t := newTally(conns)
	for i := range conns {
		t.run(i, func() (*agent.Summer, error) {
			return sendOne(cid, port, uint64(i+1), n)
		})
	}
	return t.report(stdout, began)
}

// sendOne sends Pattern(seed, n) on a connection of its own, shuts its
// sending side and waits for the peer's end, so that every byte arrived.
func sendOne(cid, port uint32, seed uint64, n int64) (*agent.Summer, error) {
	s := agent.NewSummer()
	c, err := agent.DialVsock(cid, port)
	if err != nil {
		return s, err
	}
	defer c.Close()
	if _, err := io.Copy(io.MultiWriter(c, s), agent.Pattern(seed, n)); err != nil {
		return s, fmt.Errorf("send: %w", err)
	}
	if err := c.CloseWrite(); err != nil {
		return s, err
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		return s, fmt.Errorf("wait for the peer's end: %w", err)
	}
	return s, nil
}

func recv(args []string, conns int, stdout io.Writer) error {
	if len(args) != 1 || conns < 1 {
		return usageError{errors.New("recv takes PORT and -conns of 1 or more")}
	}
	port, err := parseU32("port", args[0])
	if err != nil {
		return err
	}
	ln, err := agent.ListenVsock(port)
	if err != nil {
		return err
	}
	defer ln.Close()
	t := newTally(conns)
	var began time.Time
	for i := range conns {
		c, err := ln.AcceptVsock()
		if err != nil {
			return err
		}
		if i == 0 {
			began = time.Now()
		}
		t.run(i, func() (*agent.Summer, error) {
			defer c.Close()
			s := agent.NewSummer()
			_, err := io.Copy(s, c)
			return s, err
		})
	}
	return t.report(stdout, began)
}
