package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
	"golang.org/x/sys/unix"
)

// consoleGuest is a guest whose serial console shell a benchmark can wait
// on while it drives the VMM.
type consoleGuest interface {
	name() string
	console() *guest.Console
	// run types one command into the shell and waits for it.
	run(ctx context.Context, cmd string) (string, int, error)
}

// timeToGuest measures how long the guest takes to see cond (a shell
// condition) after request: a loop in the guest tests cond every 10 ms;
// once the guest's console shows that the loop runs, request is made, and
// the time is taken when the console shows that cond held. Polling from
// the host instead would add a serial command's round trip per poll (some
// 170 ms emulated), and its processes would compete with the guest's work.
// When profiling, the guest's own count of its polls and its uptime at
// both ends are printed beside the time.
func timeToGuest(ctx context.Context, g consoleGuest, cond string, request func()) time.Duration {
	GinkgoHelper()
	c := g.console()
	id := fmt.Sprintf("%d", time.Now().UnixNano())
	// The marker as typed ("VMMW""S<id>") is not the marker as printed.
	started, held := regexp.MustCompile("VMMWS"+id), regexp.MustCompile("VMMWH"+id)
	cmd := fmt.Sprintf(`read -r u0 _ </proc/uptime; n=0; echo VMMW""S%s; until %s; do usleep 10000; n=$((n+1)); done; read -r u1 _ </proc/uptime; echo VMMW""H%s polls=$n uptime=$u0-$u1`, id, cond, id)
	from := c.Len()
	done := make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		out, status, err := g.run(wctx, cmd)
		if benchProfiling() {
			GinkgoWriter.Printf("PROFILE %s guest wait for %q: %q\n", g.name(), cond, out)
		}
		if err == nil && status != 0 {
			err = fmt.Errorf("guest wait for %q: status %d: %s", cond, status, out)
		}
		done <- err
	}()
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	_, from, err := c.WaitFor(wctx, from, started)
	Expect(err).NotTo(HaveOccurred(), "%s: the guest's wait for %q never started", g.name(), cond)
	t0 := time.Now()
	request()
	_, _, err = c.WaitFor(wctx, from, held)
	took := time.Since(t0)
	Expect(err).NotTo(HaveOccurred(), "%s: the guest never saw %q", g.name(), cond)
	Expect(<-done).To(Succeed())
	return took
}

// memTotalAtLeast is a guest shell condition: MemTotal (the first line of
// /proc/meminfo) is at least bytes, read without starting a process.
func memTotalAtLeast(bytes uint64) string {
	return fmt.Sprintf(`{ read -r _ kb _ </proc/meminfo; [ "$kb" -ge %d ]; }`, bytes>>10)
}

// benchGuest is what takeTurns needs of a guest under a benchmark.
type benchGuest interface {
	name() string
	stop()
}

// takeTurns takes runs rounds of measurements, each on a fresh guest from
// every starter in turn, each turn after freshenHostMemory, and returns
// how many guests gave theirs. A run that fails (under emulation a guest
// sometimes dies, whatever its VMM) is reported and left out;
// cmd/benchreport fails the report when a metric got no sample at all.
func takeTurns[G benchGuest](ctx context.Context, what string, runs int, starters []func(context.Context) G, measure func(context.Context, G)) int {
	ok := 0
	for i := range runs {
		for _, start := range starters {
			freshenHostMemory()
			var g G
			started := false
			err := InterceptGomegaFailure(func() {
				g = start(ctx)
				started = true
				measure(ctx, g)
			})
			who := "?"
			if started {
				who = g.name()
				g.stop()
			}
			if err != nil {
				GinkgoWriter.Printf("BENCH %s run %d of %d FAILED for %s: %v\n", what, i+1, runs, who, err)
				continue
			}
			GinkgoWriter.Printf("BENCH %s run %d of %d done for %s\n", what, i+1, runs, who)
			ok++
		}
	}
	return ok
}

// freshenBytes is how much memory freshenHostMemory writes: more than a
// benchmark's VM leaves behind (some 200-300 MiB of RSS).
const freshenBytes = 1 << 30

// freshenHostMemory writes freshenBytes of new memory in the KVM host, in
// transparent huge pages, and frees it again, so that the next VM's memory
// does not come straight from what the last one freed. Right after a QEMU
// run, vmm's guest paid the emulated KVM host 100-850 ms per first touch
// of a 2 MiB page where it takes 7-12 ms (the memory hot add +2G took 2-3
// s instead of 0.3); QEMU after vmm, vmm after vmm and QEMU after QEMU did
// not pay it, and neither did vmm after QEMU once the KVM host had written
// its free memory (docs/performance.md). Every turn gets the same, so no
// VMM is measured on what the other left behind.
// VMM_BENCH_FRESHEN=0 leaves it out, to see the effect it is there for.
func freshenHostMemory() {
	if os.Getenv("VMM_BENCH_FRESHEN") == "0" {
		return
	}
	t0 := time.Now()
	mem, err := unix.Mmap(-1, 0, freshenBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		GinkgoWriter.Printf("BENCH freshen the KVM host's memory: %v\n", err)
		return
	}
	defer func() { _ = unix.Munmap(mem) }()
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	if benchProfiling() {
		GinkgoWriter.Printf("PROFILE freshened %d MiB of the KVM host's memory in %v\n", freshenBytes>>20, time.Since(t0).Round(time.Millisecond))
	}
}
