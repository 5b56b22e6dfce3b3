// Package acpitest checks ACPI tables with the ACPICA tools: it disassembles
// tables with `iasl -d` and compiles ASL with `iasl`, failing the test on any
// error or warning. It needs iasl (Debian package acpica-tools) and fails,
// rather than skips, when iasl is missing, so that a CI run cannot pass
// without the checks.
package acpitest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// headerSize is the size of the common table header, which iasl rewrites
// (compiler id and revision) when it compiles.
const headerSize = 36

// MissingIASL is the failure message when iasl cannot be found.
const MissingIASL = "iasl not found: apt-get install acpica-tools"

// complaint matches what iasl prints, on its console or in its output, about
// a broken table: ACPICA errors and warnings, bad checksums, names it had to
// repair, opcodes it does not know.
var complaint = regexp.MustCompile(`(?i)\b(error|warning|incorrect|invalid|unknown|unresolved|abort|exception)`)

// nonZeroCount matches a non-zero error or warning count in iasl's summary.
var nonZeroCount = regexp.MustCompile(`\b[1-9]\d* (Errors?|Warnings?)`)

// signature matches a table signature.
var signature = regexp.MustCompile(`^[A-Z0-9_]{4}$`)

// IASL returns the path of iasl, failing t when it is not installed.
func IASL(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("iasl")
	if err != nil {
		t.Fatalf("%s (%v)", MissingIASL, err)
	}
	return p
}

// Disassemble writes table to a temporary directory, disassembles it with
// `iasl -d` and returns the disassembly. It fails t if iasl fails or
// reports any error or warning (including a wrong checksum). It then
// compiles the disassembly back with iasl (namepath optimization off) and
// fails t unless that compiles without errors or warnings to the same bytes
// after the header: proof that iasl read every byte as intended and that
// the ASL it stands for is sound (arguments, references, object types).
func Disassemble(t testing.TB, table []byte) string {
	t.Helper()
	iasl := IASL(t)
	dir := t.TempDir()
	name := "table"
	if len(table) >= 4 && signature.Match(table[:4]) {
		name = strings.ToLower(string(table[:4]))
	}
	dat := filepath.Join(dir, name+".dat")
	if err := os.WriteFile(dat, table, 0o644); err != nil {
		t.Fatalf("write table: %v", err)
	}
	out := run(t, dir, iasl, "-d", dat)
	dsl, err := os.ReadFile(filepath.Join(dir, name+".dsl"))
	if err != nil {
		t.Fatalf("iasl -d wrote no disassembly: %v\n%s", err, out)
	}
	if m := complaints(out); m != "" {
		t.Fatalf("iasl -d %s complained:\n%s", name, m)
	}
	if m := complaints(stripBanner(string(dsl))); m != "" {
		t.Fatalf("iasl -d %s: the disassembly has complaints:\n%s\n\n%s", name, m, dsl)
	}
	again := Compile(t, string(dsl), "-on")
	if len(again) < headerSize || len(table) < headerSize || !bytes.Equal(again[headerSize:], table[headerSize:]) {
		t.Fatalf("iasl compiles the disassembly of %s to different bytes:\ntable    % x\ncompiled % x\n\n%s", name, table, again, dsl)
	}
	return string(dsl)
}

// Compile compiles asl, the text of one ASL DefinitionBlock, with iasl and
// returns the table it produces. extra are further iasl options, such as
// "-oa" to turn off optimizations. It fails t on any error or warning;
// remarks are allowed.
func Compile(t testing.TB, asl string, extra ...string) []byte {
	t.Helper()
	iasl := IASL(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "in.asl")
	if err := os.WriteFile(src, []byte(asl), 0o644); err != nil {
		t.Fatalf("write ASL: %v", err)
	}
	args := append([]string{"-p", filepath.Join(dir, "out")}, extra...)
	out := run(t, dir, iasl, append(args, src)...)
	if m := complaints(out); m != "" {
		t.Fatalf("iasl complained about\n%s\n%s", asl, m)
	}
	aml, err := os.ReadFile(filepath.Join(dir, "out.aml"))
	if err != nil {
		t.Fatalf("iasl wrote no AML: %v\n%s", err, out)
	}
	return aml
}

// run runs a command in dir and returns its combined output, failing t
// when it does not exit with status 0.
func run(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// complaints returns the lines of s that report a problem, or "".
func complaints(s string) string {
	var bad []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, "Compilation successful") || strings.Contains(line, "Compilation complete") {
			// "Compilation successful. 0 Errors, 0 Warnings, ..." is fine
			// when the counts are zero.
			if nonZeroCount.MatchString(line) {
				bad = append(bad, line)
			}
			continue
		}
		if complaint.MatchString(line) {
			bad = append(bad, line)
		}
	}
	return strings.Join(bad, "\n")
}

// stripBanner drops the disassembly's leading comment block, which repeats
// the command line and the tool's name.
func stripBanner(dsl string) string {
	if i := strings.Index(dsl, "*/"); strings.HasPrefix(dsl, "/*") && i >= 0 {
		return dsl[i+2:]
	}
	return dsl
}
