package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	"golang.org/x/sys/unix"
)

// The time a profiled step spends in exits, from the KVM host's own
// tracepoints: for each exit, the time from kvm_exit to the next kvm_entry
// of the same vCPU (the KVM host's handling, and the VMM's when the exit
// goes to user space), summed by exit reason. Nested page faults are listed
// one by one when they take over a millisecond: where a step waits on the
// KVM host's memory. Only tracepoints are used, in a trace instance of
// their own, enabled once before the benchmark's first guest and left on:
// enabling and disabling them patches the KVM host's code, as function
// tracing does, and the emulated KVM host does not reliably survive that
// with a guest running (a soft lockup, a guest's triple fault). A step
// only clears the buffer and turns recording on and off.

// exitsInstance is the trace instance the events are recorded in.
const exitsInstance = "/sys/kernel/tracing/instances/vmm-exits"

// slowNPF is the nested page fault time from which a fault is listed.
const slowNPF = 1e-3 // seconds

// exitTracer records one step's exits; nil when tracing could not start.
type exitTracer struct{}

// enableExitTracing enables the kvm_exit and kvm_entry tracepoints in
// their trace instance, recording off; call it, when profiling, before
// any guest runs. An error (no tracefs, no kvm events) is reported and
// leaves traceExits returning nil.
func enableExitTracing() {
	if _, err := os.Stat("/sys/kernel/tracing/instances"); err != nil {
		_ = unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, "")
	}
	if err := os.Mkdir(exitsInstance, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		GinkgoWriter.Printf("PROFILE trace exits: %v\n", err)
		return
	}
	err := errors.Join(writeTrace("tracing_on", "0"), writeTrace("buffer_size_kb", "16384"),
		writeTrace("events/kvm/kvm_exit/enable", "1"), writeTrace("events/kvm/kvm_entry/enable", "1"))
	if err != nil {
		GinkgoWriter.Printf("PROFILE trace exits: %v\n", err)
	}
}

// traceExits starts recording the KVM host's exits; nil when
// enableExitTracing did not enable them.
func traceExits() *exitTracer {
	on, err := os.ReadFile(filepath.Join(exitsInstance, "events/kvm/kvm_entry/enable"))
	if err != nil || strings.TrimSpace(string(on)) != "1" {
		return nil
	}
	if err := errors.Join(writeTrace("trace", ""), writeTrace("tracing_on", "1")); err != nil {
		GinkgoWriter.Printf("PROFILE trace exits: %v\n", err)
		return nil
	}
	return &exitTracer{}
}

func writeTrace(file, v string) error {
	return os.WriteFile(filepath.Join(exitsInstance, file), []byte(v), 0o644)
}

// exitTime is the time a step spent in exits of one reason.
type exitTime struct {
	reason     string
	n          int
	total, max float64 // seconds
}

// report stops the recording and prints what the step's exits cost.
func (t *exitTracer) report(who, step string) {
	if t == nil {
		return
	}
	_ = writeTrace("tracing_on", "0")
	b, err := os.ReadFile(filepath.Join(exitsInstance, "trace"))
	if err != nil {
		GinkgoWriter.Printf("PROFILE trace exits: %v\n", err)
		return
	}
	times, npfs, span := sumExits(string(b))
	var sb strings.Builder
	fmt.Fprintf(&sb, "PROFILE %s %s: exits over %.3f s, by the time they took:\n", who, step, span)
	for _, e := range times[:min(len(times), 10)] {
		fmt.Fprintf(&sb, "  %-12s n=%-6d total=%8.1f ms  max=%7.2f ms\n", e.reason, e.n, e.total*1e3, e.max*1e3)
	}
	for _, line := range npfs {
		sb.WriteString("  " + line + "\n")
	}
	GinkgoWriter.Print(sb.String())
}

// sumExits reads a trace of kvm_exit and kvm_entry events ("... 12.345678:
// kvm_exit: vcpu 0 reason npf rip 0x... info1 0x... info2 0x..." and
// "... 12.345699: kvm_entry: vcpu 0, rip 0x...") and returns the time per
// exit reason, most first, the nested page faults over slowNPF, and the
// time the trace spans.
func sumExits(trace string) (times []exitTime, npfs []string, span float64) {
	type open struct {
		reason, info string
		at           float64
	}
	pending := map[string]open{} // by vCPU
	byReason := map[string]*exitTime{}
	first := -1.0
	for _, line := range strings.Split(trace, "\n") {
		i := strings.Index(line, ": kvm_")
		if i < 0 {
			continue
		}
		head := strings.Fields(line[:i])
		f := strings.Fields(line[i+2:])
		if len(head) == 0 || len(f) < 3 || f[1] != "vcpu" {
			continue
		}
		at, err := strconv.ParseFloat(head[len(head)-1], 64)
		if err != nil {
			continue
		}
		if first < 0 {
			first = at
		}
		span = at - first
		vcpu := strings.TrimSuffix(f[2], ",")
		switch f[0] {
		case "kvm_exit:":
			o := open{reason: "?", at: at}
			if len(f) >= 5 && f[3] == "reason" {
				o.reason = f[4]
			}
			for k := 5; k+1 < len(f); k++ {
				if f[k] == "info1" || f[k] == "info2" {
					o.info += " " + f[k] + "=" + f[k+1]
				}
			}
			if o.reason == "io" {
				o.reason = "io " + ioPort(o.info)
			}
			pending[vcpu] = o
		case "kvm_entry:":
			o, ok := pending[vcpu]
			if !ok {
				continue
			}
			delete(pending, vcpu)
			e := byReason[o.reason]
			if e == nil {
				e = &exitTime{reason: o.reason}
				byReason[o.reason] = e
			}
			d := at - o.at
			e.n++
			e.total += d
			e.max = max(e.max, d)
			if o.reason == "npf" && d >= slowNPF {
				npfs = append(npfs, fmt.Sprintf("npf vCPU %s at %.3f: %.2f ms%s", vcpu, o.at, d*1e3, o.info))
			}
		}
	}
	for _, e := range byReason {
		times = append(times, *e)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].total > times[j].total })
	return times, npfs, span
}

// ioPort is the port of an SVM IOIO exit, bits 31:16 of its info1 (AMD
// APM vol. 2, 15.10.2), from sumExits' " info1=0x... info2=0x...".
func ioPort(info string) string {
	for _, f := range strings.Fields(info) {
		if v, ok := strings.CutPrefix(f, "info1="); ok {
			if n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 64); err == nil {
				return fmt.Sprintf("%#x", n>>16&0xffff)
			}
		}
	}
	return "?"
}
