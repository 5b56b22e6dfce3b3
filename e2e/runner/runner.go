// Package runner runs the end-to-end suite as groups of Ginkgo labels, each
// group in a KVM host of its own (package kvmhost), and retries a failure
// only when it is recognised as the emulated KVM host's own:
//
//   - a KVM host whose console shows it breaking (a panic, a lockup, a BUG,
//     or silence): kvmhost boots another and runs the group again;
//   - a spec whose failure message carries guest.EmulationFaultMarker (the
//     guest package found a signature of the emulation's faults in the
//     vmm's state dump or log): the runner runs that spec again in a fresh
//     KVM host, up to Options.EmulationRetries times.
//
// Every other failure fails the group at once. Each retry is reported with
// its reason, in the output and in the summary.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/vmmdev/vmm/e2e/kvmhost"
	"github.com/vmmdev/vmm/guest"
)

// Groups are the suite's groups in the order make test runs them.
var Groups = []string{"core", "api", "devices", "memory", "cpu", "scenarios", "distro"}

// Parallel are the groups whose specs share nothing in the KVM host: each
// boots its own vmm with its own sockets, directories, taps and subnets
// (a tap and a subnet per Ginkgo process), so they may run side by side
// (Options.Procs). api's specs share one vmm (an Ordered container) and
// distro is one spec.
var Parallel = []string{"core", "devices", "memory", "cpu", "scenarios"}

// Filter is the Ginkgo label filter of a group: "core" is every spec
// without another group's label (benchmarks run in make bench), "devices"
// the device specs but the memory ones, which are "memory", "cpu" the
// CPU scenarios, "distro" the scenarios in the distro guest, "scenarios"
// the others; any other name is a label.
func Filter(group string) string {
	switch group {
	case "core":
		return "!api && !devices && !scenarios && !benchmark"
	case "devices":
		return "devices && !memory"
	case "memory":
		return "devices && memory"
	case "cpu":
		return "scenarios && cpu"
	case "distro":
		return "scenarios && distro"
	case "scenarios":
		return "scenarios && !cpu && !distro"
	}
	return group
}

// Options describe a run of the suite.
type Options struct {
	Build, Cache string // make's output and download directories
	Host         kvmhost.Options
	// SuiteTimeout is Ginkgo's timeout for one group's run.
	SuiteTimeout time.Duration
	// EmulationRetries is how many times a spec failing with an emulation
	// fault is run again.
	EmulationRetries int
	// Budget: no retry starts after the run has taken this long.
	Budget time.Duration
	// GinkgoFlags are added to the suite's command line (a retry leaves
	// out their -ginkgo.focus, which the retried specs replace).
	GinkgoFlags []string
	// Procs is how many Ginkgo processes run a group's specs side by side
	// (1 when absent): a guest boot keeps about one of the KVM host's
	// vCPUs busy, so two specs at once use the second. More than 1 runs
	// the suite through the ginkgo command, bin/ginkgo in the payload.
	Procs map[string]int
	// Env is exported in the KVM host (the scenarios' knobs).
	Env map[string]string
	// GroupFiles and GroupEnv add payload files and variables to one
	// group's KVM host only (the distro guest's large disk image).
	GroupFiles map[string][]kvmhost.File
	GroupEnv   map[string]map[string]string
	Out        io.Writer
	Logger     *slog.Logger
}

// GroupResult is what happened to one group.
type GroupResult struct {
	Name      string
	Passed    bool
	Elapsed   time.Duration
	HostBoots int
	// Broken says why each KVM host that broke was judged broken.
	Broken []string
	// Retried lists the specs run again for an emulation fault.
	Retried []Retry
	// Failed lists the specs that failed for good, or why the group did
	// when no spec says.
	Failed []string
}

// Retry is one spec run again for an emulation fault.
type Retry struct {
	Spec, Why string
}

// Run runs the groups in order and returns what happened to each. The
// error is for a run that could not be made at all.
func Run(ctx context.Context, opts Options, groups []string) ([]GroupResult, error) {
	start := time.Now()
	var out []GroupResult
	for _, g := range groups {
		fmt.Fprintf(opts.Out, "=== e2e group %s (%s)\n", g, Filter(g))
		r, err := runGroup(ctx, opts, g, start)
		if err != nil {
			return out, err
		}
		fmt.Fprintln(opts.Out, r.Line())
		out = append(out, r)
	}
	return out, nil
}

func runGroup(ctx context.Context, opts Options, group string, start time.Time) (GroupResult, error) {
	t0 := time.Now()
	res := GroupResult{Name: group}
	var focus []string
	for try := 0; ; try++ {
		name := group
		if try > 0 {
			name = fmt.Sprintf("%s-retry%d", group, try)
		}
		dir := filepath.Join(opts.Build, "results", name)
		hr, err := runHost(ctx, opts, group, dir, focus)
		res.HostBoots += hr.Attempts
		res.Broken = append(res.Broken, hr.Broken...)
		res.Elapsed = time.Since(t0)
		if errors.Is(err, kvmhost.ErrHostBroken) {
			res.Failed = append(res.Failed, fmt.Sprintf("every KVM host broke (%d boots)", hr.Attempts))
			return res, nil
		}
		if err != nil {
			return res, err
		}
		v := judge(hr.ExitCode, filepath.Join(dir, "report.json"))
		if v.passed {
			res.Passed = true
			return res, nil
		}
		if len(v.genuine) > 0 {
			res.Failed = append(res.Failed, v.genuine...)
			return res, nil
		}
		if try >= opts.EmulationRetries || time.Since(start) > opts.Budget {
			for _, r := range v.emulation {
				res.Failed = append(res.Failed, fmt.Sprintf("%s: %s (retries exhausted)", r.Spec, r.Why))
			}
			return res, nil
		}
		focus = focus[:0]
		for _, r := range v.emulation {
			fmt.Fprintf(opts.Out, "=== e2e group %s: %q failed with an emulation fault (%s); running it again in a fresh KVM host\n", group, r.Spec, r.Why)
			res.Retried = append(res.Retried, r)
			focus = append(focus, regexp.QuoteMeta(r.Spec))
		}
	}
}

// runHost runs the suite's binary for one group in a KVM host.
func runHost(ctx context.Context, opts Options, group, dir string, focus []string) (kvmhost.Result, error) {
	if err := os.RemoveAll(dir); err != nil {
		return kvmhost.Result{}, err
	}
	h := opts.Host
	h.ResultsDir = dir
	h.Console = opts.Out
	h.Logger = opts.Logger
	h.Env = map[string]string{}
	for k, v := range opts.Host.Env {
		h.Env[k] = v
	}
	for k, v := range opts.Env {
		h.Env[k] = v
	}
	for k, v := range opts.GroupEnv[group] {
		h.Env[k] = v
	}
	h.Files = append(append([]kvmhost.File(nil), opts.Host.Files...), opts.GroupFiles[group]...)
	h.Command = command(opts, group, focus)
	return kvmhost.Run(ctx, h)
}

// command is the suite's command line in the KVM host for a group: the
// test binary itself, or the ginkgo command running it in Options.Procs
// processes, which takes the same flags without their -ginkgo. prefix.
func command(opts Options, group string, focus []string) []string {
	flags := []string{"-ginkgo.v", "-ginkgo.no-color",
		"-ginkgo.timeout=" + opts.SuiteTimeout.String(),
		"-ginkgo.junit-report=$RESULTS/junit.xml", "-ginkgo.json-report=$RESULTS/report.json",
		"-ginkgo.label-filter=" + Filter(group), "-ginkgo.flake-attempts=1"}
	for _, f := range opts.GinkgoFlags {
		if len(focus) > 0 && strings.HasPrefix(f, "-ginkgo.focus") {
			continue
		}
		flags = append(flags, f)
	}
	if len(focus) > 0 {
		flags = append(flags, "-ginkgo.focus="+strings.Join(focus, "|"))
	}
	procs := opts.Procs[group]
	if procs <= 1 {
		return append([]string{"./bin/e2e.test", "-test.v"}, flags...)
	}
	cmd := []string{"./bin/ginkgo", "run", fmt.Sprintf("--procs=%d", procs)}
	var testFlags []string
	for _, f := range flags {
		if rest, ok := strings.CutPrefix(f, "-ginkgo."); ok {
			cmd = append(cmd, "--"+rest)
		} else {
			testFlags = append(testFlags, f)
		}
	}
	cmd = append(cmd, "./bin/e2e.test", "--", "-test.v")
	return append(cmd, testFlags...)
}

// verdict is a group run's outcome, read from its Ginkgo report.
type verdict struct {
	passed    bool
	genuine   []string // failures not recognised as the emulation's
	emulation []Retry  // failures that carry an emulation fault's signature
}

// judge reads the Ginkgo JSON report of a run that exited with code.
func judge(code int, report string) verdict {
	data, err := os.ReadFile(report)
	if err != nil {
		if code == 0 {
			return verdict{genuine: []string{"the suite passed but wrote no report: " + err.Error()}}
		}
		return verdict{genuine: []string{fmt.Sprintf("the suite exited %d without a report (%v)", code, err)}}
	}
	var reports []types.Report
	if err := json.Unmarshal(data, &reports); err != nil {
		return verdict{genuine: []string{"unreadable report: " + err.Error()}}
	}
	var v verdict
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if !s.Failed() {
				continue
			}
			name := s.FullText()
			if name == "" {
				name = s.LeafNodeType.String()
			}
			if why := emulationFault(s); why != "" {
				v.emulation = append(v.emulation, Retry{Spec: name, Why: why})
				continue
			}
			v.genuine = append(v.genuine, fmt.Sprintf("%s: %s", name, firstLine(s.Failure.Message)))
		}
	}
	if len(v.genuine)+len(v.emulation) == 0 {
		if code == 0 {
			v.passed = true
		} else {
			v.genuine = []string{fmt.Sprintf("the suite exited %d with no failed spec", code)}
		}
	}
	return v
}

// EmulationFaultEntry is the name of the report entry in which a spec
// names the emulation fault its guest showed when it failed by its own
// check.
const EmulationFaultEntry = "emulation fault"

// emulationFault is the signature a failed spec names, in its failure
// message or a report entry, or "".
func emulationFault(s types.SpecReport) string {
	for _, e := range s.ReportEntries {
		if e.Name == EmulationFaultEntry {
			return e.StringRepresentation()
		}
	}
	for _, l := range strings.Split(s.Failure.Message, "\n") {
		l = strings.TrimSpace(l)
		if i := strings.Index(l, guest.EmulationFaultMarker); i >= 0 {
			return l[i+len(guest.EmulationFaultMarker):]
		}
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// Line is the one-line account of a group.
func (r GroupResult) Line() string {
	var b strings.Builder
	status := "passed"
	if !r.Passed {
		status = "FAILED"
	}
	fmt.Fprintf(&b, "=== e2e group %s %s in %ds; KVM host boots: %d", r.Name, status, int(r.Elapsed.Seconds()), r.HostBoots)
	for _, w := range r.Broken {
		fmt.Fprintf(&b, "\n===   a KVM host broke (retried): %s", w)
	}
	for _, t := range r.Retried {
		fmt.Fprintf(&b, "\n===   retried for an emulation fault: %q: %s", t.Spec, t.Why)
	}
	for _, f := range r.Failed {
		fmt.Fprintf(&b, "\n===   failed: %s", f)
	}
	return b.String()
}
