package bench

import "time"

// HistoryRuns is how many earlier runs the results JSON keeps beside the
// latest, newest first.
const HistoryRuns = 10

// RunSummary is an earlier run as the results JSON's history keeps it: per
// metric the medians and their ratio, without the samples.
type RunSummary struct {
	Generated time.Time       `json:"generated"`
	Metrics   []SummaryMetric `json:"metrics"`
}

// SummaryMetric is one metric of a RunSummary; a VMM without samples has
// a null median, and the ratio is null when either median is missing or
// qemu's is 0.
type SummaryMetric struct {
	Metric string   `json:"metric"`
	Unit   string   `json:"unit"`
	VMM    *float64 `json:"vmm"`
	QEMU   *float64 `json:"qemu"`
	Ratio  *float64 `json:"ratio"`
}

// Summary is r's medians and ratios.
func (r Report) Summary() RunSummary {
	s := RunSummary{Generated: r.Generated.UTC(), Metrics: []SummaryMetric{}}
	for _, m := range r.Measurements {
		sm := SummaryMetric{Metric: m.Metric, Unit: m.Unit}
		if st, ok := m.Stats(VMM); ok {
			sm.VMM = &st.Median
		}
		if st, ok := m.Stats(QEMU); ok {
			sm.QEMU = &st.Median
		}
		if ratio, ok := m.Ratio(); ok {
			sm.Ratio = &ratio
		}
		s.Metrics = append(s.Metrics, sm)
	}
	return s
}

// Follow makes r the run after prev: r's history is prev's summary and
// prev's own history, at most HistoryRuns runs, newest first.
func (r *Report) Follow(prev Report) {
	h := append([]RunSummary{prev.Summary()}, prev.History...)
	r.History = h[:min(len(h), HistoryRuns)]
}
