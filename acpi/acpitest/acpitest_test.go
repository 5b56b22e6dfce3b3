package acpitest

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// fakeTB records the first fatal failure and stops the goroutine there, as
// testing.T does, so the checks can be tested for failing.
type fakeTB struct {
	testing.TB
	mu     sync.Mutex
	failed string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// runFake runs check against a fakeTB and returns its failure, or "".
func runFake(t *testing.T, check func(tb testing.TB)) string {
	f := &fakeTB{TB: t}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		check(f)
	}()
	wg.Wait()
	return f.failed
}

// minimalDSDT is a DSDT holding Name (ABCD, One), with a valid checksum.
func minimalDSDT() []byte {
	t := []byte("DSDT\x00\x00\x00\x00\x02\x00VMM   VMMDSDT \x01\x00\x00\x00VMM \x01\x00\x00\x00\x08ABCD\x01")
	t[4] = byte(len(t))
	var sum byte
	for _, c := range t {
		sum += c
	}
	t[9] = -sum
	return t
}

func TestDisassembleWithFakeTBPassesAValidTable(t *testing.T) {
	var dsl string
	if msg := runFake(t, func(tb testing.TB) { dsl = Disassemble(tb, minimalDSDT()) }); msg != "" {
		t.Fatalf("valid table failed: %s", msg)
	}
	if !strings.Contains(dsl, "Name (ABCD, One)") {
		t.Errorf("disassembly lacks the object:\n%s", dsl)
	}
}

func TestDisassembleWithFakeTBFailsABadChecksum(t *testing.T) {
	tbl := minimalDSDT()
	tbl[9]++
	msg := runFake(t, func(tb testing.TB) { Disassemble(tb, tbl) })
	if !strings.Contains(msg, "checksum") {
		t.Errorf("bad checksum not reported; failure: %q", msg)
	}
}

func TestDisassembleWithFakeTBFailsAnInvalidName(t *testing.T) {
	tbl := minimalDSDT()
	tbl[len(tbl)-3] = '*' // ABCD -> AB*D
	tbl[9] += 'C' - '*'
	if msg := runFake(t, func(tb testing.TB) { Disassemble(tb, tbl) }); msg == "" {
		t.Error("invalid name not reported")
	}
}

func TestCompileWithFakeTBFailsOnWarnings(t *testing.T) {
	asl := `DefinitionBlock ("", "DSDT", 2, "VMM   ", "VMMDSDT ", 1) { Device (DEV0) { } }`
	if msg := runFake(t, func(tb testing.TB) { Compile(tb, asl) }); !strings.Contains(msg, "Warning") {
		t.Errorf("warning (device without _HID or _ADR) not reported; failure: %q", msg)
	}
}
