// Package bench turns the measurements that the e2e benchmark specs print
// into a report: per metric and VMM the median, minimum, maximum and sample
// count, the vmm/QEMU ratio of medians, a Markdown table, a results JSON file
// and a PNG chart.
//
// # The BENCHDATA line
//
// A benchmark spec prints one line per measured value:
//
//	BENCHDATA {"metric":"boot: process start to ready marker","unit":"ms","vmm":"qemu","value":13968}
//
// The line holds the word BENCHDATA, one or more spaces or tabs, and one JSON
// object, then nothing but white space (a trailing carriage return from a
// serial console is fine). Anything before BENCHDATA on the line (a time
// stamp, a test runner's indentation) is ignored. The object has exactly
// these fields, all required:
//
//   - metric: what was measured, the same string in every run and for both
//     VMMs; it names the table row. It must not contain a comma or an '@'
//     (the characters that separate benchreport's -require list).
//   - unit: the unit of value ("ms", "MiB", ...); every line of a metric
//     must use the same unit.
//   - vmm: which VMM was measured: "vmm" or "qemu".
//   - value: one measurement, a JSON number.
//
// Lines without BENCHDATA, and lines where BENCHDATA is not followed by a
// JSON object, are ignored; a line where it is followed by an object that
// does not meet the rules above is an error. [Sample.Line] prints a line in
// this format.
package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Prefix is the word that starts a benchmark data line.
const Prefix = "BENCHDATA"

// The names of the VMMs a sample may be for.
const (
	// VMM is this project's VMM.
	VMM = "vmm"
	// QEMU is the peer it is compared with.
	QEMU = "qemu"
)

// knownVMM reports whether name is a VMM a sample may be for.
func knownVMM(name string) bool { return name == VMM || name == QEMU }

// vmmOrder lists the known VMMs in report order.
func vmmOrder() []string { return []string{VMM, QEMU} }

// Sample is one measured value: the payload of one BENCHDATA line.
type Sample struct {
	Metric string  `json:"metric"`
	Unit   string  `json:"unit"`
	VMM    string  `json:"vmm"`
	Value  float64 `json:"value"`
}

// Validate reports whether s may be printed as a BENCHDATA line and read
// back: metric, unit and vmm set, vmm known, metric free of ',' and '@'.
func (s Sample) Validate() error {
	switch {
	case strings.TrimSpace(s.Metric) == "":
		return errors.New("empty metric")
	case strings.ContainsAny(s.Metric, ",@"):
		return fmt.Errorf("metric %q contains ',' or '@'", s.Metric)
	case strings.TrimSpace(s.Unit) == "":
		return fmt.Errorf("metric %q: empty unit", s.Metric)
	case !knownVMM(s.VMM):
		return fmt.Errorf("metric %q: unknown vmm %q (want %q or %q)", s.Metric, s.VMM, VMM, QEMU)
	}
	return nil
}

// Line formats s as a BENCHDATA line, without a line break. A value that is
// not a finite number is printed as such and fails when the line is read.
func (s Sample) Line() string {
	var b strings.Builder
	b.WriteString(Prefix)
	b.WriteString(` {"metric":`)
	b.Write(jsonString(s.Metric))
	b.WriteString(`,"unit":`)
	b.Write(jsonString(s.Unit))
	b.WriteString(`,"vmm":`)
	b.Write(jsonString(s.VMM))
	b.WriteString(`,"value":`)
	b.WriteString(strconv.FormatFloat(s.Value, 'g', -1, 64))
	b.WriteString("}")
	return b.String()
}

// jsonString encodes s as a JSON string without HTML escaping.
func jsonString(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// ParseLog reads a console log and returns the samples of its BENCHDATA
// lines in the order they appear. Other lines are ignored. A malformed
// BENCHDATA line is an error naming its line number; every malformed line is
// reported, and no samples are returned then.
func ParseLog(r io.Reader) ([]Sample, error) {
	br := bufio.NewReader(r)
	var samples []Sample
	var errs []error
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if line != "" {
			s, ok, perr := parseLine(line)
			switch {
			case perr != nil:
				errs = append(errs, fmt.Errorf("line %d: %w", n, perr))
			case ok:
				samples = append(samples, s)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read line %d: %w", n, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return samples, nil
}

// wireSample is a BENCHDATA object as read, with pointers to tell a missing
// field from a zero one.
type wireSample struct {
	Metric *string  `json:"metric"`
	Unit   *string  `json:"unit"`
	VMM    *string  `json:"vmm"`
	Value  *float64 `json:"value"`
}

// parseLine returns the sample on line, ok false when line holds none.
func parseLine(line string) (Sample, bool, error) {
	rest := line
	for {
		i := strings.Index(rest, Prefix)
		if i < 0 {
			return Sample{}, false, nil
		}
		rest = rest[i+len(Prefix):]
		body := strings.TrimLeft(rest, " \t")
		if len(body) < len(rest) && strings.HasPrefix(body, "{") {
			s, err := decodeSample(body)
			return s, err == nil, err
		}
	}
}

// decodeSample decodes the JSON object that starts body and checks that
// only white space follows it.
func decodeSample(body string) (Sample, error) {
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var w wireSample
	if err := dec.Decode(&w); err != nil {
		return Sample{}, fmt.Errorf("%s: bad JSON: %w", Prefix, err)
	}
	if tail := strings.TrimSpace(body[dec.InputOffset():]); tail != "" {
		return Sample{}, fmt.Errorf("%s: unexpected %q after the JSON object", Prefix, tail)
	}
	var missing []string
	for _, f := range []struct {
		name    string
		present bool
	}{{"metric", w.Metric != nil}, {"unit", w.Unit != nil}, {"vmm", w.VMM != nil}, {"value", w.Value != nil}} {
		if !f.present {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return Sample{}, fmt.Errorf("%s: missing field(s) %s", Prefix, strings.Join(missing, ", "))
	}
	s := Sample{Metric: *w.Metric, Unit: *w.Unit, VMM: *w.VMM, Value: *w.Value}
	if err := s.Validate(); err != nil {
		return Sample{}, fmt.Errorf("%s: %w", Prefix, err)
	}
	return s, nil
}
