package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vmmdev/vmm/lua"
)

// defaultScriptTimeout bounds one scenario script under `vmmctl run`.
const defaultScriptTimeout = 30 * time.Minute

// runUsage is the usage line of `vmmctl run`, for the dispatch table.
const runUsage = "[-v] [--console] [--junit FILE] [--vmm PATH] [--script-timeout D] FILE.lua..."

// cmdRun is `vmmctl run FILE.lua...`: it runs Lua scenarios one after
// another, each starting its own vmm processes (see package lua), prints
// live progress per step, and writes a JUnit report with --junit. It fails
// (exit 1) when any scenario fails. An interrupt stops the running
// scenario's VMs and marks the rest as not run.
func cmdRun(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet("run")
	verbose := fs.Bool("v", false, "also show VM operations, guest commands and their output")
	fs.BoolVar(verbose, "verbose", false, "same as -v")
	console := fs.Bool("console", false, "stream every VM's console and vmm log to stderr")
	junit := fs.String("junit", "", "write a JUnit XML report to FILE")
	binary := fs.String("vmm", "", "the vmm binary (default $VMM_BIN, else .build/vmm in the module)")
	scriptTimeout := fs.Duration("script-timeout", defaultScriptTimeout, "time limit of one scenario")
	if err := fs.Parse(args); err != nil {
		return misuse("run: %v", err)
	}
	files := fs.Args()
	if len(files) == 0 {
		return misuse("run needs at least one FILE.lua")
	}
	if *scriptTimeout <= 0 {
		return misuse("run: --script-timeout must be positive")
	}
	for _, f := range files {
		if strings.HasPrefix(f, "-") {
			return misuse("run: flags go before the files, got %q after them", f)
		}
	}

	launcher := lua.GuestLauncher{Binary: *binary}
	if *console {
		launcher.ConsoleLog, launcher.VmmLog = e.stderr, e.stderr
	}
	r := &lua.Runner{
		Launcher: launcher,
		Reporter: &lua.TextReporter{W: e.stdout, Verbose: *verbose},
	}
	var results []*lua.Result
	for _, f := range files {
		if ctx.Err() != nil {
			results = append(results, r.RunFiles(ctx, []string{f})...)
			continue
		}
		sctx, cancel := context.WithTimeoutCause(ctx, *scriptTimeout,
			fmt.Errorf("scenario took longer than --script-timeout %v", *scriptTimeout))
		results = append(results, r.RunFile(sctx, f))
		cancel()
	}

	var failed []string
	for _, res := range results {
		if !res.Passed() {
			failed = append(failed, res.Script)
		}
	}
	var errs []error
	if *junit != "" {
		if err := writeJUnitFile(*junit, results); err != nil {
			errs = append(errs, err)
		}
	}
	if len(failed) == 0 {
		fmt.Fprintf(e.stdout, "PASS: %d scenario(s)\n", len(results))
	} else {
		errs = append(errs, fmt.Errorf("%d of %d scenario(s) failed: %s", len(failed), len(results), strings.Join(failed, ", ")))
	}
	return errors.Join(errs...)
}

// writeJUnitFile writes the report to path.
func writeJUnitFile(path string, results []*lua.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("JUnit report: %w", err)
	}
	if err := lua.WriteJUnit(f, results); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("JUnit report: %w", err)
	}
	return nil
}
