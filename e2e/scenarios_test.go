package e2e

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/lua"
)

// Each scenarios/*.lua is one spec, found when the tree is built, so that
// adding a script adds a spec. Scripts for behaviour that has not landed
// wait in scenarios/pending/, which is not globbed.

const (
	// scenarioTimeout bounds one scenario spec: a few guest boots under
	// emulation.
	scenarioTimeout = 12 * time.Minute
	// envTestdata is the directory of e2e/testdata in the KVM host.
	envTestdata = "VMM_TESTDATA"
	// failingFixture is the script that must fail; failHereMarker is the
	// comment on the line it fails at.
	failingFixture = "failing.lua"
	failHereMarker = "-- FAILS HERE"
	// failingStep and failingMessage are what its failure must say.
	failingStep    = `in step "the guest has a second CPU"`
	failingMessage = "online CPUs: got {0}, want {0, 1}"
)

var _ = Describe("Lua scenarios", Label("scenarios"), func() {
	dir := guest.ResolvePaths().Scenarios
	files, globErr := filepath.Glob(filepath.Join(dir, "*.lua"))
	sort.Strings(files)

	It("finds the scenarios to run", func() {
		Expect(globErr).NotTo(HaveOccurred())
		Expect(files).NotTo(BeEmpty(), "no *.lua in %q (set %s)", dir, guest.EnvScenarios)
	})

	for _, file := range files {
		It(filepath.Base(file), scenarioLabels(file), func(ctx SpecContext) {
			Expect(runScenario(ctx, file)).To(passScenario())
		}, SpecTimeout(scenarioTimeout))
	}
})

var _ = Describe("a failing scenario", Label("scenarios"), func() {
	fixture := filepath.Join(testdataDir(), failingFixture)

	It("fails its spec with the script's message, file and line, and leaves no vmm behind", func(ctx SpecContext) {
		line := markerLine(fixture, failHereMarker)
		res := runScenario(ctx, fixture)

		failures := InterceptGomegaFailures(func() { Expect(res).To(passScenario()) })
		Expect(failures).To(HaveLen(1), "the spec of a failing scenario must fail")
		Expect(failures[0]).To(ContainSubstring(fmt.Sprintf("%s:%d: ", fixture, line)))
		Expect(failures[0]).To(ContainSubstring(failingStep))
		Expect(failures[0]).To(ContainSubstring(failingMessage))
	}, SpecTimeout(scenarioTimeout))

	It("makes vmmctl run exit 1 with the message and a JUnit report", func(ctx SpecContext) {
		vmmctl := guest.ResolvePaths().Vmmctl
		line := markerLine(fixture, failHereMarker)
		report := filepath.Join(GinkgoT().TempDir(), "junit.xml")

		cmd := exec.CommandContext(ctx, vmmctl, "run", "-v", "--junit", report, fixture)
		cmd.WaitDelay = 10 * time.Second
		out, err := cmd.CombinedOutput()
		GinkgoWriter.Printf("vmmctl run output:\n%s\n", out)
		var ee *exec.ExitError
		Expect(errors.As(err, &ee)).To(BeTrue(), "vmmctl run of a failing scenario: %v", err)
		Expect(ee.ExitCode()).To(Equal(1))
		Expect(string(out)).To(ContainSubstring(fmt.Sprintf("%s:%d: %s: %s", fixture, line, failingStep, failingMessage)))
		Expect(string(out)).To(ContainSubstring("--- FAIL " + fixture))

		data, err := os.ReadFile(report)
		Expect(err).NotTo(HaveOccurred(), "the JUnit report")
		var suites struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
		}
		Expect(xml.Unmarshal(data, &suites)).To(Succeed())
		Expect(suites.Failures).To(BeNumerically(">=", 1))
		Expect(string(data)).To(ContainSubstring(failingMessage))
	}, SpecTimeout(scenarioTimeout))
})

// scenarioLabels labels a scenario's spec with the topic its file name
// starts with (cpu_stress.lua: "cpu"), so that a run can pick or split the
// scenarios by topic (e2e/runner runs "cpu" in a KVM host of its own).
func scenarioLabels(file string) Labels {
	topic, _, ok := strings.Cut(filepath.Base(file), "_")
	if !ok {
		return Label()
	}
	return Label(topic)
}

// runScenario runs one script with the real vmm, streaming its report, the
// consoles and the vmm logs to the GinkgoWriter, and checks that none of
// the vmm processes it started survived it.
func runScenario(ctx context.Context, file string) *lua.Result {
	GinkgoHelper()
	r := &lua.Runner{
		Launcher: lua.GuestLauncher{ConsoleLog: GinkgoWriter, VmmLog: GinkgoWriter},
		Reporter: &lua.TextReporter{W: GinkgoWriter, Verbose: true},
		// VMM_SCENARIO_AGENT=off: the scenarios' commands on the serial
		// console, as before the guest agent (to compare, or to debug).
		NoAgent: os.Getenv("VMM_SCENARIO_AGENT") == "off",
	}
	res := r.RunFile(ctx, file)
	for _, vm := range res.VMs {
		Expect(processGone(vm.Pid)).To(BeTrue(), "vmm of %s (pid %d) survived %s", vm.Name, vm.Pid, file)
	}
	return res
}

// passScenario succeeds for a *lua.Result that passed; its failure message
// is the script's own (file:line: in step "...": message), followed by the
// end of each VM's console.
func passScenario() types.GomegaMatcher { return scenarioMatcher{} }

type scenarioMatcher struct{}

func (scenarioMatcher) Match(actual any) (bool, error) {
	res, ok := actual.(*lua.Result)
	if !ok || res == nil {
		return false, fmt.Errorf("passScenario expects a *lua.Result, got %T", actual)
	}
	return res.Passed(), nil
}

func (scenarioMatcher) FailureMessage(actual any) string {
	res := actual.(*lua.Result)
	var b strings.Builder
	fmt.Fprintf(&b, "scenario failed: %v", res.Err)
	for _, vm := range res.VMs {
		fmt.Fprintf(&b, "\n%s console (last lines):\n%s", vm.Name, vm.ConsoleTail)
	}
	return b.String()
}

func (scenarioMatcher) NegatedFailureMessage(actual any) string {
	return fmt.Sprintf("scenario %s passed, want a failure", actual.(*lua.Result).Script)
}

// testdataDir is e2e/testdata: $VMM_TESTDATA in the KVM host, else the
// package's testdata directory (go test runs in the package directory).
func testdataDir() string {
	if d := os.Getenv(envTestdata); d != "" {
		return d
	}
	return "testdata"
}

// markerLine is the number of the line of file that contains marker.
func markerLine(file, marker string) int {
	GinkgoHelper()
	f, err := os.Open(file)
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.Contains(sc.Text(), marker) {
			return n
		}
	}
	Fail(fmt.Sprintf("%s has no line marked %q", file, marker))
	return 0
}

// processGone reports whether pid no longer exists, giving the kernel a
// moment to finish its exit.
func processGone(pid int) bool {
	for range 50 {
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}
