package e2e

import (
	"context"
	"fmt"
	"regexp"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
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
// the time is taken when the console shows that cond held. Polling from the
// host instead would add a serial command's round trip per poll (some
// 170 ms emulated), and its processes would compete with the guest's work.
func timeToGuest(ctx context.Context, g consoleGuest, cond string, request func()) time.Duration {
	GinkgoHelper()
	c := g.console()
	id := fmt.Sprintf("%d", time.Now().UnixNano())
	// The marker as typed ("VMMW""S<id>") is not the marker as printed.
	started, held := regexp.MustCompile("VMMWS"+id), regexp.MustCompile("VMMWH"+id)
	cmd := fmt.Sprintf(`echo VMMW""S%s; until %s; do usleep 10000; done; echo VMMW""H%s`, id, cond, id)
	from := c.Len()
	done := make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		out, status, err := g.run(wctx, cmd)
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
// every starter in turn, and returns how many guests gave theirs. A run
// that fails (under emulation a guest sometimes dies, whatever its VMM)
// is reported and left out; cmd/benchreport fails the report when a
// metric got no sample at all.
func takeTurns[G benchGuest](ctx context.Context, what string, runs int, starters []func(context.Context) G, measure func(context.Context, G)) int {
	ok := 0
	for i := range runs {
		for _, start := range starters {
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
