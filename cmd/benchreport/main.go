// Command benchreport turns the console logs of a benchmark run into a
// report: it reads the BENCHDATA lines (format: package bench) from each
// log, prints a Markdown table of per-metric median, minimum, maximum and
// sample count for vmm and QEMU with their ratio, and writes the table, the
// results JSON and a PNG chart to the files named by its flags.
//
// Usage:
//
//	benchreport [-md FILE] [-json FILE] [-png FILE] [-require LIST]... LOG...
//
// LOG "-" is standard input. -require takes a comma-separated list of
// metrics that must have been measured ("\," for a comma in a name); a
// metric alone needs samples for vmm and qemu, "metric@vmm" (or "@qemu",
// "@vmm+qemu") for the VMMs named.
// -require may be repeated. When the -json file exists, the report follows
// it: the new file keeps its run, and the runs it kept, as history
// (bench.HistoryRuns at most); a file that cannot be read is replaced, with
// a warning.
//
// Exit status: 0 on success; 1 when a log cannot be read, holds a malformed
// BENCHDATA line or no BENCHDATA line at all, a required measurement is
// missing, or an output cannot be written; 2 on misuse. When a measurement
// is missing, the table still goes to standard output for diagnosis but no
// file is written, so that a complete earlier report is not replaced by a
// partial one.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vmmdev/vmm/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, time.Now))
}

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitMisuse = 2
)

// programName starts every message.
const programName = "benchreport"

// requireFlag gathers -require lists.
type requireFlag []bench.Requirement

// String shows the requirements as they would be given.
func (f *requireFlag) String() string {
	parts := make([]string, len(*f))
	for i, r := range *f {
		parts[i] = strings.ReplaceAll(r.Metric, ",", `\,`) + "@" + strings.Join(r.VMMs, "+")
	}
	return strings.Join(parts, ",")
}

// Set adds the requirements in one -require list.
func (f *requireFlag) Set(list string) error {
	reqs, err := bench.ParseRequirements(list)
	if err != nil {
		return err
	}
	*f = append(*f, reqs...)
	return nil
}

// run is the command with its environment passed in; it returns the exit
// status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, now func() time.Time) int {
	fs := flag.NewFlagSet(programName, flag.ContinueOnError)
	fs.SetOutput(stderr)
	mdPath := fs.String("md", "", "also write the Markdown table and chart key to `FILE`")
	jsonPath := fs.String("json", "", "write the results JSON to `FILE`")
	pngPath := fs.String("png", "", "write the PNG chart to `FILE`")
	var reqs requireFlag
	fs.Var(&reqs, "require", "comma-separated `LIST` of metrics that must have samples: METRIC (vmm and qemu) or METRIC@VMM[+VMM]; repeatable")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [-md FILE] [-json FILE] [-png FILE] [-require LIST]... LOG...\n"+
			"Reads BENCHDATA lines from the console logs (- for standard input) and reports them.\n", programName)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitMisuse
	}
	if fs.NArg() == 0 {
		fmt.Fprintf(stderr, "%s: no console log given\n", programName)
		fs.Usage()
		return exitMisuse
	}

	report, err := read(fs.Args(), stdin)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", programName, err)
		return exitFailed
	}
	report.Generated = now().UTC().Truncate(time.Second)
	if *jsonPath != "" {
		if prev, err := readPrevious(*jsonPath); err != nil {
			fmt.Fprintf(stderr, "%s: warning: %v; the history starts again\n", programName, err)
		} else if prev != nil {
			report.Follow(*prev)
		}
	}

	var md, js, pngData bytes.Buffer
	if err := report.WriteMarkdown(&md); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", programName, err)
		return exitFailed
	}
	if _, err := stdout.Write(md.Bytes()); err != nil {
		fmt.Fprintf(stderr, "%s: write standard output: %v\n", programName, err)
		return exitFailed
	}
	if err := bench.Check(report.Measurements, reqs); err != nil {
		fmt.Fprintf(stderr, "%s: FAILED: %v; no report file written\n", programName, err)
		return exitFailed
	}
	if err := report.WriteJSON(&js); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", programName, err)
		return exitFailed
	}
	if err := report.WritePNG(&pngData); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", programName, err)
		return exitFailed
	}
	for _, out := range []struct {
		path string
		data []byte
	}{{*mdPath, md.Bytes()}, {*jsonPath, js.Bytes()}, {*pngPath, pngData.Bytes()}} {
		if out.path == "" {
			continue
		}
		if err := os.WriteFile(out.path, out.data, 0o644); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", programName, err)
			return exitFailed
		}
	}
	return exitOK
}

// read parses every log and collects its samples into a report.
func read(paths []string, stdin io.Reader) (bench.Report, error) {
	var all []bench.Sample
	for _, path := range paths {
		samples, err := readLog(path, stdin)
		if err != nil {
			return bench.Report{}, err
		}
		all = append(all, samples...)
	}
	if len(all) == 0 {
		return bench.Report{}, fmt.Errorf("no %s line in %s: no measurement was taken", bench.Prefix, strings.Join(paths, ", "))
	}
	ms, err := bench.Collect(all)
	if err != nil {
		return bench.Report{}, err
	}
	return bench.Report{Sources: paths, Measurements: ms}, nil
}

// readLog parses one log; path "-" is stdin.
func readLog(path string, stdin io.Reader) ([]bench.Sample, error) {
	if path == "-" {
		samples, err := bench.ParseLog(stdin)
		if err != nil {
			return nil, fmt.Errorf("standard input: %w", err)
		}
		return samples, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open console log: %w", err)
	}
	defer f.Close()
	samples, err := bench.ParseLog(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return samples, nil
}

// readPrevious reads the results JSON at path, nil when there is none.
func readPrevious(path string) (*bench.Report, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("previous results: %w", err)
	}
	defer f.Close()
	r, err := bench.ReadJSON(f)
	if err != nil {
		return nil, fmt.Errorf("previous results %s: %w", path, err)
	}
	return &r, nil
}
