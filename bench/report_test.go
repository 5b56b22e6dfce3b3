package bench

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testReport is a report with a metric for both VMMs, one for vmm only and
// one whose qemu median is zero.
func testReport(t *testing.T) Report {
	t.Helper()
	log := strings.Join([]string{
		Sample{Metric: "boot: process start to ready marker", Unit: "ms", VMM: VMM, Value: 7400}.Line(),
		Sample{Metric: "boot: process start to ready marker", Unit: "ms", VMM: QEMU, Value: 13968}.Line(),
		Sample{Metric: "boot: process start to ready marker", Unit: "ms", VMM: VMM, Value: 6900}.Line(),
		Sample{Metric: "boot: process start to ready marker", Unit: "ms", VMM: VMM, Value: 7012}.Line(),
		Sample{Metric: "boot: process start to ready marker", Unit: "ms", VMM: QEMU, Value: 15000}.Line(),
		Sample{Metric: "boot: setup to first KVM_RUN", Unit: "ms", VMM: VMM, Value: 12.34}.Line(),
		Sample{Metric: "api | ping p99", Unit: "ms", VMM: VMM, Value: 0.5}.Line(),
		Sample{Metric: "api | ping p99", Unit: "ms", VMM: QEMU, Value: 0}.Line(),
	}, "\n")
	samples, err := ParseLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Collect(samples)
	if err != nil {
		t.Fatal(err)
	}
	return Report{Generated: time.Date(2026, 5, 25, 10, 0, 0, 0, time.UTC), Sources: []string{"console.log"}, Measurements: ms}
}

func TestWriteTableShowsStatsAndRatios(t *testing.T) {
	var b bytes.Buffer
	if err := testReport(t).WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := "| metric | vmm median (min-max) | qemu median (min-max) | vmm/qemu |\n" +
		"| --- | ---: | ---: | ---: |\n" +
		"| boot: process start to ready marker (ms) | 7012 (6900-7400), n=3 | 14484 (13968-15000), n=2 | 0.48 |\n" +
		"| boot: setup to first KVM_RUN (ms) | 12.3 (12.3-12.3), n=1 | — | — |\n" +
		"| api \\| ping p99 (ms) | 0.5 (0.5-0.5), n=1 | 0 (0-0), n=1 | — |\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteMarkdownKeysTheChartedMetrics(t *testing.T) {
	var b bytes.Buffer
	if err := testReport(t).WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "|\n\nChart: ") || !strings.HasSuffix(b.String(), " Charted: the 1 of 3 metrics with samples from both VMMs.\n") {
		t.Errorf("Markdown:\n%s\nwant the table, a blank line and a chart key naming group 1 only", b.String())
	}
	b.Reset()
	if err := (Report{}).WriteMarkdown(&b); err != nil || !strings.Contains(b.String(), "the chart is empty") {
		t.Errorf("empty report Markdown %q, %v; want it to say the chart is empty", b.String(), err)
	}
}

func TestFormatNumber(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{13968, "13968"}, {0, "0"}, {-42, "-42"}, {123.456, "123"}, {12.34, "12.3"},
		{1.234, "1.23"}, {0.35, "0.35"}, {0.012345, "0.0123"}, {-2.5, "-2.50"},
	}
	for _, tt := range tests {
		if got := formatNumber(tt.v); got != tt.want {
			t.Errorf("formatNumber(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestFormatRatio(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{{0.5, "0.50"}, {1.4166, "1.42"}, {12, "12.00"}, {0.0761, "0.076"}, {0.1, "0.10"}, {0, "0.00"}}
	for _, tt := range tests {
		if got := formatRatio(tt.v); got != tt.want {
			t.Errorf("formatRatio(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestWriteJSONLayout(t *testing.T) {
	var b bytes.Buffer
	if err := testReport(t).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("results JSON does not decode: %v\n%s", err, b.String())
	}
	if got["format"] != FormatVersion || got["generated"] != "2026-05-25T10:00:00Z" ||
		!reflect.DeepEqual(got["sources"], []any{"console.log"}) {
		t.Errorf("header fields wrong: %s", b.String())
	}
	metrics := got["metrics"].([]any)
	if len(metrics) != 3 {
		t.Fatalf("%d metrics, want 3", len(metrics))
	}
	boot := metrics[0].(map[string]any)
	wantBoot := map[string]any{
		"metric": "boot: process start to ready marker", "unit": "ms",
		"vmm":   map[string]any{"n": 3.0, "median": 7012.0, "min": 6900.0, "max": 7400.0, "samples": []any{7400.0, 6900.0, 7012.0}},
		"qemu":  map[string]any{"n": 2.0, "median": 14484.0, "min": 13968.0, "max": 15000.0, "samples": []any{13968.0, 15000.0}},
		"ratio": 7012.0 / 14484,
	}
	if !reflect.DeepEqual(boot, wantBoot) {
		t.Errorf("boot metric\n%v\nwant\n%v", boot, wantBoot)
	}
	vmmOnly := metrics[1].(map[string]any)
	if vmmOnly["qemu"] != nil || vmmOnly["ratio"] != nil {
		t.Errorf("vmm-only metric %v, want qemu and ratio null", vmmOnly)
	}
	for _, key := range []string{"qemu", "ratio"} {
		if _, present := vmmOnly[key]; !present {
			t.Errorf("vmm-only metric lacks %q; want it present as null", key)
		}
	}
}

func TestReadJSONRoundTrips(t *testing.T) {
	want := testReport(t)
	var b bytes.Buffer
	if err := want.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(&b)
	if err != nil {
		t.Fatalf("ReadJSON: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip\n%+v\nwant\n%+v", got, want)
	}
	if _, err := ReadJSON(strings.NewReader(`{"format":"other"}`)); err == nil {
		t.Error("ReadJSON accepted another format")
	}
}
