package runner

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/vmmdev/vmm/guest"
)

// writeReport writes a Ginkgo JSON report of specs, as the suite would:
// the reports here are written by the test, not by a run.
func writeReport(t *testing.T, specs ...types.SpecReport) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "report.json")
	data, err := json.Marshal([]types.Report{{SpecReports: specs}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func spec(text string, state types.SpecState, msg string) types.SpecReport {
	return types.SpecReport{ContainerHierarchyTexts: []string{"boot"}, LeafNodeText: text, LeafNodeType: types.NodeTypeIt,
		State: state, Failure: types.Failure{Message: msg}}
}

func withEntry(s types.SpecReport) types.SpecReport {
	s.ReportEntries = append(s.ReportEntries, types.ReportEntry{Name: EmulationFaultEntry,
		Value: types.WrapEntryValue("vCPU 1 runs with CR3 0x1f0000, outside guest RAM (vm)")})
	return s
}

func TestJudgeRetriesOnlyFailuresThatCarryAnEmulationFaultWithWrittenReports(t *testing.T) {
	emu := "vm1: guest command timed out\nvm1 vmm state dump: ...\n" + guest.EmulationFaultMarker + "vCPU 1 runs with CR3 0x1f0000, outside guest RAM"
	cases := []struct {
		name          string
		code          int
		specs         []types.SpecReport
		passed        bool
		genuine, emul int
	}{
		{"all passed", 0, []types.SpecReport{spec("a", types.SpecStatePassed, "")}, true, 0, 0},
		{"an emulation fault", 1, []types.SpecReport{spec("a", types.SpecStatePassed, ""), spec("b", types.SpecStateFailed, emu)}, false, 0, 1},
		{"a timeout with a signature", 1, []types.SpecReport{spec("b", types.SpecStateTimedout, emu)}, false, 0, 1},
		{"a plain failure", 1, []types.SpecReport{spec("b", types.SpecStateFailed, "Expected 4 to equal 8")}, false, 1, 0},
		{"one of each fails for good", 1, []types.SpecReport{spec("b", types.SpecStateFailed, emu), spec("c", types.SpecStateFailed, "boom")}, false, 1, 1},
		{"a spec's own check, with the fault in a report entry", 1, []types.SpecReport{withEntry(spec("b", types.SpecStateFailed, "Expected 4 to equal 8"))}, false, 0, 1},
		{"a non-zero exit without a failed spec", 1, []types.SpecReport{spec("a", types.SpecStatePassed, "")}, false, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := judge(c.code, writeReport(t, c.specs...))
			if v.passed != c.passed || len(v.genuine) != c.genuine || len(v.emulation) != c.emul {
				t.Errorf("judge = %+v, want passed=%v, %d genuine, %d emulation", v, c.passed, c.genuine, c.emul)
			}
			for _, r := range v.emulation {
				if r.Spec != "boot b" || !strings.HasPrefix(r.Why, "vCPU 1 runs with CR3") {
					t.Errorf("retry %+v: want spec %q and the signature", r, "boot b")
				}
			}
		})
	}
}

func TestJudgeFailsARunWithoutAReport(t *testing.T) {
	for _, code := range []int{0, 1} {
		v := judge(code, filepath.Join(t.TempDir(), "missing.json"))
		if v.passed || len(v.genuine) != 1 {
			t.Errorf("exit %d without a report: %+v, want one genuine failure", code, v)
		}
	}
}

func TestFilterGivesEachGroupItsLabels(t *testing.T) {
	for g, want := range map[string]string{
		"core": "!api && !devices && !scenarios && !benchmark", "cpu": "scenarios && cpu",
		"scenarios": "scenarios && !cpu && !distro", "api": "api", "distro": "scenarios && distro", "boot": "boot",
		"devices": "devices && !memory", "memory": "devices && memory",
	} {
		if got := Filter(g); got != want {
			t.Errorf("Filter(%q) = %q, want %q", g, got, want)
		}
	}
}

func TestCommandRunsTheBinaryAloneOrThroughGinkgoWithTheSameFlags(t *testing.T) {
	opts := Options{GinkgoFlags: []string{"-ginkgo.focus=x", "-test.count=1"}, Procs: map[string]int{"scenarios": 2}}
	serial := strings.Join(command(opts, "core", nil), " ")
	for _, want := range []string{"./bin/e2e.test -test.v ", "-ginkgo.label-filter=" + Filter("core"), "-ginkgo.focus=x", "-test.count=1"} {
		if !strings.Contains(serial, want) {
			t.Errorf("serial command %q lacks %q", serial, want)
		}
	}
	par := strings.Join(command(opts, "scenarios", []string{"a b"}), " ")
	for _, want := range []string{"./bin/ginkgo run --procs=2 ", "--label-filter=" + Filter("scenarios"), "--json-report=$RESULTS/report.json",
		"--focus=a b", " ./bin/e2e.test -- -test.v -test.count=1"} {
		if !strings.Contains(par, want) {
			t.Errorf("parallel command %q lacks %q", par, want)
		}
	}
	if strings.Contains(par, "-ginkgo.") || strings.Contains(par, "--focus=x") {
		t.Errorf("parallel command %q keeps a -ginkgo. flag or the focus a retry replaces", par)
	}
}
