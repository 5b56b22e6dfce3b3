package bench

import (
	"fmt"
	"slices"
)

// Stats summarises the samples of one metric for one VMM.
type Stats struct {
	// N is the number of samples.
	N int `json:"n"`
	// Median is the middle sample, or the mean of the two middle ones when
	// N is even.
	Median float64 `json:"median"`
	// Min and Max are the smallest and largest sample.
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// Summarize computes the statistics of values; ok is false when there are
// none.
func Summarize(values []float64) (s Stats, ok bool) {
	if len(values) == 0 {
		return Stats{}, false
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	n := len(sorted)
	median := sorted[n/2]
	if n%2 == 0 {
		median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return Stats{N: n, Median: median, Min: sorted[0], Max: sorted[n-1]}, true
}

// Measurement is one metric: its unit and its samples per VMM.
type Measurement struct {
	// Metric names what was measured.
	Metric string
	// Unit is the unit of every sample.
	Unit string
	// Samples holds the values per VMM name (VMM, QEMU), in the order
	// they were read.
	Samples map[string][]float64
}

// Stats summarises the samples for vmm; ok is false when there are none.
func (m Measurement) Stats(vmm string) (s Stats, ok bool) {
	return Summarize(m.Samples[vmm])
}

// Ratio is the median for VMM divided by the median for QEMU; ok is false
// when either has no samples or QEMU's median is zero.
func (m Measurement) Ratio() (ratio float64, ok bool) {
	v, okV := m.Stats(VMM)
	q, okQ := m.Stats(QEMU)
	if !okV || !okQ || q.Median == 0 {
		return 0, false
	}
	return v.Median / q.Median, true
}

// Collect groups samples into measurements, one per metric, in the order
// each metric first appears. Every sample must be valid (see
// [Sample.Validate]) and every sample of a metric must have the same unit.
func Collect(samples []Sample) ([]Measurement, error) {
	var out []Measurement
	index := map[string]int{}
	for _, s := range samples {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("collect: %w", err)
		}
		i, seen := index[s.Metric]
		if !seen {
			i = len(out)
			index[s.Metric] = i
			out = append(out, Measurement{Metric: s.Metric, Unit: s.Unit, Samples: map[string][]float64{}})
		}
		m := &out[i]
		if m.Unit != s.Unit {
			return nil, fmt.Errorf("collect: metric %q: unit %q, earlier %q", s.Metric, s.Unit, m.Unit)
		}
		m.Samples[s.VMM] = append(m.Samples[s.VMM], s.Value)
	}
	return out, nil
}
