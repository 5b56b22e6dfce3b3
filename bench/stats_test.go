package bench

import (
	"strings"
	"testing"
)

func TestSummarizeComputesMedianMinMaxAndCount(t *testing.T) {
	tests := []struct {
		name   string
		values []float64
		want   Stats
		ok     bool
	}{
		{name: "none", values: nil, ok: false},
		{name: "one", values: []float64{5}, want: Stats{N: 1, Median: 5, Min: 5, Max: 5}, ok: true},
		{name: "two: mean of both", values: []float64{4, 1}, want: Stats{N: 2, Median: 2.5, Min: 1, Max: 4}, ok: true},
		{name: "odd count, unsorted", values: []float64{9, 1, 7, 3, 5}, want: Stats{N: 5, Median: 5, Min: 1, Max: 9}, ok: true},
		{name: "even count: mean of middle two", values: []float64{10, 40, 20, 30}, want: Stats{N: 4, Median: 25, Min: 10, Max: 40}, ok: true},
		{name: "duplicates", values: []float64{2, 2, 2, 8}, want: Stats{N: 4, Median: 2, Min: 2, Max: 8}, ok: true},
		{name: "negatives", values: []float64{-3, -1, -2}, want: Stats{N: 3, Median: -2, Min: -3, Max: -1}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := append([]float64(nil), tt.values...)
			got, ok := Summarize(tt.values)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Summarize(%v) = %+v, %v; want %+v, %v", tt.values, got, ok, tt.want, tt.ok)
			}
			for i := range orig {
				if tt.values[i] != orig[i] {
					t.Fatalf("Summarize reordered its input: %v, was %v", tt.values, orig)
				}
			}
		})
	}
}

func TestCollectGroupsByMetricInFirstSeenOrder(t *testing.T) {
	samples := []Sample{
		{Metric: "boot", Unit: "ms", VMM: VMM, Value: 7},
		{Metric: "rss", Unit: "MiB", VMM: QEMU, Value: 30},
		{Metric: "boot", Unit: "ms", VMM: QEMU, Value: 14},
		{Metric: "boot", Unit: "ms", VMM: VMM, Value: 5},
	}
	ms, err := Collect(samples)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if len(ms) != 2 || ms[0].Metric != "boot" || ms[1].Metric != "rss" {
		t.Fatalf("Collect = %+v, want boot then rss", ms)
	}
	if got := ms[0].Samples[VMM]; len(got) != 2 || got[0] != 7 || got[1] != 5 {
		t.Errorf("boot vmm samples %v, want [7 5] in read order", got)
	}
	if got := ms[1].Samples[VMM]; len(got) != 0 {
		t.Errorf("rss vmm samples %v, want none", got)
	}
}

func TestCollectRejectsBadSamples(t *testing.T) {
	tests := []struct {
		name    string
		samples []Sample
		want    string
	}{
		{"unit changes", []Sample{{Metric: "m", Unit: "ms", VMM: VMM, Value: 1}, {Metric: "m", Unit: "s", VMM: QEMU, Value: 1}}, `unit "s", earlier "ms"`},
		{"unknown vmm", []Sample{{Metric: "m", Unit: "ms", VMM: "xen", Value: 1}}, `unknown vmm "xen"`},
		{"@ in metric", []Sample{{Metric: "m@vmm", Unit: "ms", VMM: VMM, Value: 1}}, "contains ','"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Collect(tt.samples)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Collect error %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func TestMeasurementRatioIsVMMMedianOverQEMUMedian(t *testing.T) {
	tests := []struct {
		name    string
		samples map[string][]float64
		want    float64
		ok      bool
	}{
		{"both", map[string][]float64{VMM: {1, 2, 3}, QEMU: {4, 8}}, 2.0 / 6, true},
		{"vmm only", map[string][]float64{VMM: {1}}, 0, false},
		{"qemu only", map[string][]float64{QEMU: {1}}, 0, false},
		{"qemu median zero", map[string][]float64{VMM: {1}, QEMU: {0}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Measurement{Metric: "m", Unit: "ms", Samples: tt.samples}.Ratio()
			if got != tt.want || ok != tt.ok {
				t.Errorf("Ratio() = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
