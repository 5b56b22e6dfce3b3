package bench

import (
	"errors"
	"fmt"
	"strings"
)

// Requirement names a metric that must have been measured, and the VMMs it
// must have at least one sample for.
type Requirement struct {
	Metric string
	VMMs   []string
}

// ParseRequirements reads a comma-separated list of requirements. Each item
// is a metric name, optionally followed by '@' and the VMMs it is required
// for joined by '+': "boot: ready" needs samples for vmm and qemu,
// "boot: first KVM_RUN@vmm" for vmm only. A comma in a metric's name is
// written "\,". Space around items is ignored; an empty list is no
// requirement.
func ParseRequirements(list string) ([]Requirement, error) {
	var reqs []Requirement
	for _, item := range splitUnescaped(list) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		metric, vmms, hasVMMs := strings.Cut(item, "@")
		r := Requirement{Metric: strings.TrimSpace(metric), VMMs: vmmOrder()}
		if r.Metric == "" {
			return nil, fmt.Errorf("requirement %q: empty metric", item)
		}
		if hasVMMs {
			r.VMMs = nil
			for _, v := range strings.Split(vmms, "+") {
				v = strings.TrimSpace(v)
				if !knownVMM(v) {
					return nil, fmt.Errorf("requirement %q: unknown vmm %q (want %q or %q)", item, v, VMM, QEMU)
				}
				r.VMMs = append(r.VMMs, v)
			}
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// Missing is a required metric that lacks samples for some VMMs.
type Missing struct {
	Metric string
	VMMs   []string
}

// MissingError lists the required measurements that were not taken.
type MissingError struct {
	Missing []Missing
}

// Error names every missing metric and the VMMs it lacks.
func (e *MissingError) Error() string {
	parts := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		parts[i] = fmt.Sprintf("%q (no samples for %s)", m.Metric, strings.Join(m.VMMs, ", "))
	}
	return fmt.Sprintf("%d required measurement(s) missing: %s", len(e.Missing), strings.Join(parts, "; "))
}

// Check verifies that every requirement has at least one sample for each
// of its VMMs. It returns a *MissingError naming all that do not.
func Check(ms []Measurement, reqs []Requirement) error {
	byMetric := make(map[string]Measurement, len(ms))
	for _, m := range ms {
		byMetric[m.Metric] = m
	}
	var e MissingError
	for _, r := range reqs {
		m := byMetric[r.Metric]
		var lacking []string
		for _, v := range r.VMMs {
			if len(m.Samples[v]) == 0 {
				lacking = append(lacking, v)
			}
		}
		if len(lacking) > 0 {
			e.Missing = append(e.Missing, Missing{Metric: r.Metric, VMMs: lacking})
		}
	}
	if len(e.Missing) > 0 {
		return &e
	}
	return nil
}

// IsMissing reports whether err says that required measurements are missing.
func IsMissing(err error) bool {
	var e *MissingError
	return errors.As(err, &e)
}

// splitUnescaped splits list at its commas, except those written "\,",
// which stay in the item as plain commas.
func splitUnescaped(list string) []string {
	var items []string
	var b strings.Builder
	for i := 0; i < len(list); i++ {
		switch {
		case list[i] == '\\' && i+1 < len(list) && list[i+1] == ',':
			b.WriteByte(',')
			i++
		case list[i] == ',':
			items = append(items, b.String())
			b.Reset()
		default:
			b.WriteByte(list[i])
		}
	}
	return append(items, b.String())
}
