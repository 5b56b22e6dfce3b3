package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Report is the outcome of one benchmark run.
type Report struct {
	// Generated is when the report was made.
	Generated time.Time
	// Sources names the logs the samples were read from.
	Sources []string
	// Measurements are the metrics, in table order.
	Measurements []Measurement
	// History summarises the runs before this one, newest first (see
	// [Report.Follow]).
	History []RunSummary
}

// FormatVersion identifies the layout of the results JSON.
const FormatVersion = "vmm-bench/2"

// formatVersion1 is the layout before the history; ReadJSON still reads it.
const formatVersion1 = "vmm-bench/1"

// jsonReport is the results JSON; its layout is documented on WriteJSON.
type jsonReport struct {
	Format    string       `json:"format"`
	Generated time.Time    `json:"generated"`
	Sources   []string     `json:"sources"`
	Metrics   []jsonMetric `json:"metrics"`
	History   []RunSummary `json:"history"`
}

// jsonMetric is one metric of the results JSON.
type jsonMetric struct {
	Metric string   `json:"metric"`
	Unit   string   `json:"unit"`
	VMM    *jsonVMM `json:"vmm"`
	QEMU   *jsonVMM `json:"qemu"`
	Ratio  *float64 `json:"ratio"`
}

// jsonVMM is one VMM's statistics and samples for a metric.
type jsonVMM struct {
	Stats
	Samples []float64 `json:"samples"`
}

// WriteJSON writes the results JSON (bench/results.json) to w, one object:
//
//	{
//	  "format": "vmm-bench/1",
//	  "generated": "2026-05-25T10:00:00Z",
//	  "sources": ["bench-console.log"],
//	  "metrics": [
//	    {
//	      "metric": "boot: process start to ready marker",
//	      "unit": "ms",
//	      "vmm":  {"n": 5, "median": 7012, "min": 6900, "max": 7400, "samples": [7012, 6900, 7400, 7100, 6950]},
//	      "qemu": {"n": 5, "median": 13968, "min": 13000, "max": 15000, "samples": [...]},
//	      "ratio": 0.502
//	    }
//	  ],
//	  "history": [
//	    {
//	      "generated": "2026-05-24T10:00:00Z",
//	      "metrics": [{"metric": "boot: process start to ready marker", "unit": "ms", "vmm": 7100, "qemu": 13900, "ratio": 0.511}]
//	    }
//	  ]
//	}
//
// metrics keeps table order (first appearance in the logs). "vmm" or
// "qemu" is null when that VMM has no samples for the metric; samples are in
// the order they were read. "ratio" is vmm's median over qemu's, null when
// either is missing or qemu's median is 0. "history" holds the medians and
// ratios of up to HistoryRuns earlier runs, newest first, so that a
// regression shows.
func (r Report) WriteJSON(w io.Writer) error {
	out := jsonReport{Format: FormatVersion, Generated: r.Generated.UTC(), Sources: r.Sources, Metrics: []jsonMetric{},
		History: r.History}
	if out.History == nil {
		out.History = []RunSummary{}
	}
	if out.Sources == nil {
		out.Sources = []string{}
	}
	for _, m := range r.Measurements {
		jm := jsonMetric{Metric: m.Metric, Unit: m.Unit, VMM: jsonStats(m, VMM), QEMU: jsonStats(m, QEMU)}
		if ratio, ok := m.Ratio(); ok {
			jm.Ratio = &ratio
		}
		out.Metrics = append(out.Metrics, jm)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write results JSON: %w", err)
	}
	return nil
}

// jsonStats is the JSON summary of m for vmm, nil when it has no samples.
func jsonStats(m Measurement, vmm string) *jsonVMM {
	s, ok := m.Stats(vmm)
	if !ok {
		return nil
	}
	return &jsonVMM{Stats: s, Samples: m.Samples[vmm]}
}

// ReadJSON reads a report written by [Report.WriteJSON], or by its first
// layout, which had no history. Statistics are recomputed from the
// samples.
func ReadJSON(rd io.Reader) (Report, error) {
	var in jsonReport
	if err := json.NewDecoder(rd).Decode(&in); err != nil {
		return Report{}, fmt.Errorf("read results JSON: %w", err)
	}
	if in.Format != FormatVersion && in.Format != formatVersion1 {
		return Report{}, fmt.Errorf("read results JSON: format %q, want %q", in.Format, FormatVersion)
	}
	r := Report{Generated: in.Generated, Sources: in.Sources}
	if len(in.History) > 0 {
		r.History = in.History
	}
	for _, jm := range in.Metrics {
		m := Measurement{Metric: jm.Metric, Unit: jm.Unit, Samples: map[string][]float64{}}
		for vmm, js := range map[string]*jsonVMM{VMM: jm.VMM, QEMU: jm.QEMU} {
			if js != nil && len(js.Samples) > 0 {
				m.Samples[vmm] = js.Samples
			}
		}
		r.Measurements = append(r.Measurements, m)
	}
	return r, nil
}

// The columns of the Markdown table.
const tableHeader = "| metric | vmm median (min-max) | qemu median (min-max) | vmm/qemu |\n| --- | ---: | ---: | ---: |\n"

// noValue fills a table cell that has nothing to show.
const noValue = "—"

// WriteMarkdown writes the table (see [Report.WriteTable]), a blank line and
// the chart key (see [Report.WriteChartKey]).
func (r Report) WriteMarkdown(w io.Writer) error {
	if err := r.WriteTable(w); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write Markdown: %w", err)
	}
	return r.WriteChartKey(w)
}

// WriteTable writes a Markdown table with one row per metric: its name and
// unit, vmm's and qemu's median with minimum, maximum and sample count, and
// the ratio of the medians.
func (r Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	b.WriteString(tableHeader)
	for _, m := range r.Measurements {
		ratio := noValue
		if v, ok := m.Ratio(); ok {
			ratio = formatRatio(v)
		}
		fmt.Fprintf(&b, "| %s (%s) | %s | %s | %s |\n", escapeCell(m.Metric), escapeCell(m.Unit),
			statsCell(m, VMM), statsCell(m, QEMU), ratio)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write Markdown table: %w", err)
	}
	return nil
}

// WriteChartKey writes a paragraph that explains the PNG chart, whose rows
// name their metrics themselves.
func (r Report) WriteChartKey(w io.Writer) error {
	var b strings.Builder
	b.WriteString("Chart: one row per metric, named on the y axis; vmm (blue) and qemu (orange) medians relative to qemu's median, " +
		"on a log2 scale (grid lines at powers of 2; the dark line is 1, as fast or as large as qemu); " +
		"whiskers span min to max; lower is better for times and sizes, higher for throughput (MiB/s).")
	if n := len(chartedMetrics(r.Measurements)); n == 0 {
		b.WriteString(" No metric has samples for both VMMs, so the chart is empty.\n")
	} else {
		fmt.Fprintf(&b, " Charted: the %d of %d metrics with samples from both VMMs.\n", n, len(r.Measurements))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write chart key: %w", err)
	}
	return nil
}

// statsCell formats vmm's statistics for m as "median (min-max), n=N".
func statsCell(m Measurement, vmm string) string {
	s, ok := m.Stats(vmm)
	if !ok {
		return noValue
	}
	sep := "-"
	if s.Min < 0 || s.Max < 0 {
		sep = " to "
	}
	return fmt.Sprintf("%s (%s%s%s), n=%d", formatNumber(s.Median), formatNumber(s.Min), sep, formatNumber(s.Max), s.N)
}

// formatNumber prints v with about three significant digits, and whole
// numbers in full.
func formatNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case v == math.Trunc(v) && a < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// formatRatio prints a ratio with two decimals, or two significant digits
// below 0.1.
func formatRatio(v float64) string {
	if math.Abs(v) < 0.1 && v != 0 {
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// escapeCell keeps s from ending a Markdown table cell or row.
func escapeCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}
