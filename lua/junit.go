package lua

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// scriptCase names the test case of what a script did outside its steps.
const scriptCase = "(script)"

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
	SystemOut string      `xml:"system-out,omitempty"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes results as a JUnit XML report: one test suite per
// script, one test case per step (nested steps named "outer > inner"), and
// a "(script)" case for a failure outside any step or a script without
// steps. A failed case carries the message with file and line; the suite's
// system-out carries the end of each VM's console.
func WriteJUnit(w io.Writer, results []*Result) error {
	all := junitSuites{}
	var total time.Duration
	for _, r := range results {
		s := junitSuite{
			Name:      r.Script,
			Time:      seconds(r.Duration),
			Timestamp: r.Start.UTC().Format("2006-01-02T15:04:05"),
		}
		failedInStep := false
		for _, st := range r.Steps {
			c := junitCase{Name: st.Name(), Classname: r.Script, Time: seconds(st.Duration)}
			if st.Err != nil {
				c.Failure = failure(st.Err)
				failedInStep = true
			}
			s.Cases = append(s.Cases, c)
		}
		if len(r.Steps) == 0 || r.Err != nil && !failedInStep {
			c := junitCase{Name: scriptCase, Classname: r.Script, Time: seconds(r.Duration)}
			if r.Err != nil {
				c.Failure = failure(r.Err)
			}
			s.Cases = append(s.Cases, c)
		}
		for _, c := range s.Cases {
			s.Tests++
			if c.Failure != nil {
				s.Failures++
			}
		}
		var out strings.Builder
		for _, vm := range r.VMs {
			fmt.Fprintf(&out, "%s (pid %d) console, last lines:\n%s\n", vm.Name, vm.Pid, vm.ConsoleTail)
		}
		s.SystemOut = out.String()
		all.Suites = append(all.Suites, s)
		all.Tests += s.Tests
		all.Failures += s.Failures
		total += r.Duration
	}
	all.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	return nil
}

func failure(err error) *junitFailure {
	f := &junitFailure{Message: err.Error(), Type: "failure", Text: err.Error()}
	if se, ok := err.(*ScriptError); ok && se.Trace != "" {
		f.Text += "\n" + se.Trace
	}
	return f
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
