package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testLog = `kernel noise
  BENCHDATA {"metric":"boot: ready","unit":"ms","vmm":"vmm","value":7000}
  BENCHDATA {"metric":"boot: ready","unit":"ms","vmm":"qemu","value":14000}
  BENCHDATA {"metric":"boot: first KVM_RUN","unit":"ms","vmm":"vmm","value":3}
`

func fixedNow() time.Time { return time.Date(2026, 5, 25, 10, 0, 0, 0, time.UTC) }

// writeLog writes a console log into dir and returns its path.
func writeLog(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunWritesTableJSONAndPNG(t *testing.T) {
	dir := t.TempDir()
	log := writeLog(t, dir, "console.log", testLog)
	md, js, pngPath := filepath.Join(dir, "t.md"), filepath.Join(dir, "r.json"), filepath.Join(dir, "c.png")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-md", md, "-json", js, "-png", pngPath, "-require", "boot: ready", "-require", "boot: first KVM_RUN@vmm", log},
		nil, &stdout, &stderr, fixedNow)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "| boot: ready (ms) | 7000 (7000-7000), n=1 | 14000 (14000-14000), n=1 | 0.50 |") {
		t.Errorf("stdout lacks the boot row:\n%s", stdout.String())
	}
	if got, err := os.ReadFile(md); err != nil || string(got) != stdout.String() {
		t.Errorf("-md file %q, %v; want the same as stdout", got, err)
	}
	data, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var results struct {
		Generated string
		Sources   []string
		Metrics   []struct{ Metric string }
	}
	if err := json.Unmarshal(data, &results); err != nil || results.Generated != "2026-05-25T10:00:00Z" ||
		len(results.Sources) != 1 || results.Sources[0] != log || len(results.Metrics) != 2 {
		t.Errorf("results JSON %+v, %v:\n%s", results, err, data)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("chart is not a PNG: %v", err)
	}
}

func TestRunKeepsTheEarlierRunsAsHistory(t *testing.T) {
	dir := t.TempDir()
	log := writeLog(t, dir, "console.log", testLog)
	js := filepath.Join(dir, "r.json")
	for range 3 {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-json", js, log}, nil, &stdout, &stderr, fixedNow); code != 0 {
			t.Fatalf("exit %d, stderr %s", code, stderr.String())
		}
	}
	data, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var results struct {
		Format  string
		History []struct {
			Metrics []struct {
				Metric string
				Ratio  *float64
			}
		}
	}
	if err := json.Unmarshal(data, &results); err != nil || results.Format != "vmm-bench/2" || len(results.History) != 2 ||
		results.History[1].Metrics[0].Metric != "boot: ready" || *results.History[1].Metrics[0].Ratio != 0.5 {
		t.Errorf("results JSON %+v, %v:\n%s", results, err, data)
	}

	// A file that is not results JSON is replaced, with a warning.
	if err := os.WriteFile(js, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-json", js, log}, nil, &stdout, &stderr, fixedNow); code != 0 || !strings.Contains(stderr.String(), "warning") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestRunReadsSeveralLogsAndStandardInput(t *testing.T) {
	dir := t.TempDir()
	a := writeLog(t, dir, "a.log", `BENCHDATA {"metric":"m","unit":"ms","vmm":"vmm","value":1}`)
	var stdout, stderr bytes.Buffer
	stdin := strings.NewReader(`BENCHDATA {"metric":"m","unit":"ms","vmm":"qemu","value":4}`)
	if code := run([]string{"-require", "m", a, "-"}, stdin, &stdout, &stderr, fixedNow); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "| m (ms) | 1 (1-1), n=1 | 4 (4-4), n=1 | 0.25 |") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

func TestRunFailsLoudly(t *testing.T) {
	dir := t.TempDir()
	good := writeLog(t, dir, "good.log", testLog)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no logs", nil, 2, "no console log given"},
		{"unknown flag", []string{"-frobnicate", good}, 2, "flag provided but not defined"},
		{"bad -require", []string{"-require", "boot@xen", good}, 2, `unknown vmm "xen"`},
		{"missing log", []string{filepath.Join(dir, "nope.log")}, 1, "open console log"},
		{"no data lines", []string{writeLog(t, dir, "empty.log", "just a console\n")}, 1, "no BENCHDATA line in"},
		{"malformed line", []string{writeLog(t, dir, "bad.log", "x\nBENCHDATA {\"metric\":1}\n")}, 1, "bad.log: line 2: BENCHDATA: bad JSON"},
		{
			"required metric missing",
			[]string{"-json", filepath.Join(dir, "missing.json"), "-require", "boot: ready,boot: first KVM_RUN,mem: 2 GiB@vmm", good},
			1, `FAILED: 2 required measurement(s) missing: "boot: first KVM_RUN" (no samples for qemu); "mem: 2 GiB" (no samples for vmm)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, strings.NewReader(""), &stdout, &stderr, fixedNow)
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tt.code, tt.stderr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.json")); !os.IsNotExist(err) {
		t.Errorf("results JSON written despite a missing measurement (stat: %v)", err)
	}
}

func TestRunHelpIsNotMisuse(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-h"}, nil, &stdout, &stderr, fixedNow); code != 0 || !strings.Contains(stderr.String(), "usage: benchreport") {
		t.Errorf("exit %d, stderr %q; want 0 and the usage", code, stderr.String())
	}
}
