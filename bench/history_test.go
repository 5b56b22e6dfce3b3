package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestFollowKeepsTheLastRunsNewestFirst(t *testing.T) {
	run := func(day int, vmm, qemu float64) Report {
		return Report{Generated: time.Date(2026, 12, day, 0, 0, 0, 0, time.UTC),
			Measurements: []Measurement{{Metric: "boot", Unit: "ms", Samples: map[string][]float64{VMM: {vmm}, QEMU: {qemu}}}}}
	}
	prev := run(1, 1, 2)
	for day := 2; day <= HistoryRuns+3; day++ {
		r := run(day, float64(day), 2)
		r.Follow(prev)
		// Through the JSON, as benchreport reads the previous file.
		var b bytes.Buffer
		if err := r.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		var err error
		if prev, err = ReadJSON(&b); err != nil {
			t.Fatal(err)
		}
	}
	h := prev.History
	if len(h) != HistoryRuns {
		t.Fatalf("%d runs in the history, want %d", len(h), HistoryRuns)
	}
	if got := h[0].Generated.Day(); got != HistoryRuns+2 {
		t.Errorf("newest earlier run of day %d, want %d", got, HistoryRuns+2)
	}
	if m := h[0].Metrics[0]; m.Metric != "boot" || *m.VMM != HistoryRuns+2 || *m.QEMU != 2 || *m.Ratio != float64(HistoryRuns+2)/2 {
		t.Errorf("summary %+v", m)
	}
}

func TestReadJSONReadsTheFirstLayout(t *testing.T) {
	r, err := ReadJSON(strings.NewReader(`{"format":"vmm-bench/1","generated":"2026-11-26T19:25:26Z","sources":[],"metrics":[` +
		`{"metric":"boot","unit":"ms","vmm":{"n":1,"median":1,"min":1,"max":1,"samples":[1]},"qemu":null,"ratio":null}]}`))
	if err != nil || len(r.Measurements) != 1 || r.History != nil {
		t.Fatalf("ReadJSON: %+v, %v", r, err)
	}
	if s := r.Summary(); s.Metrics[0].QEMU != nil || s.Metrics[0].Ratio != nil || *s.Metrics[0].VMM != 1 {
		t.Errorf("summary of a vmm-only metric: %+v", s.Metrics[0])
	}
}
