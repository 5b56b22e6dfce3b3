package lua

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	glua "github.com/yuin/gopher-lua"

	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm/config"
)

func TestRunnerWithFakeVMPassesAScenario(t *testing.T) {
	res, l, rep := runScript(t, `
local vm = step("boot", function()
  return vmm.start{cpus = {boot = 4, max = 8}, memory = {size = "1G", hotplug_size = "8G"},
                   rng = true, disks = {{path = "/d.img", readonly = true}}}
end)
step("look inside", function()
  local c = vm:cpus()
  expect.eq(c.online, {0, 1, 2, 3}, "online CPUs")
  expect.eq(#c.offline, 4)
  expect.eq(vm:memory().total, vmm.size("1G"))
  local out, status = vm:sh("nproc")
  expect.eq(out, "4")
  expect.eq(status, 0)
  expect.eq(vm:run("nproc"), "4")
  say("the guest has", out, "CPUs")
end)
step("api", function()
  local status, err = vm:resize{vcpus = 8, memory = "2G"}
  expect.eq(status, 204)
  expect.eq(err, nil)
  expect.ok(vm:resize{vcpus = 8})
  local info = vm:info()
  expect.eq(info.state, "Running")
  expect.eq(info.config.cpus.max_vcpus, 8)
  expect.eq(vm:ping().version, "fake")
  expect.match(vm:wait_for("GUEST-\\w+"), "READY")
  expect.eq(vm:wait_for(function() return vm:cpus().online[4], "x" end), 3)
  vm:reboot()
  vm:reboot{via = "guest"}
  vm:shutdown()
end)
expect.eq(vm.name, "vm1")
expect.eq(tostring(vm), "vm vm1")
`)
	if res.Err != nil {
		t.Fatalf("script failed: %v", res.Err)
	}
	if len(l.vms) != 1 {
		t.Fatalf("%d VMs started, want 1", len(l.vms))
	}
	vm := l.vms[0]
	want := config.Default()
	want.CPUs = config.CPUs{BootVCPUs: 4, MaxVCPUs: 8}
	want.Memory = config.Memory{Size: 1 << 30, HotplugSize: 8 << 30}
	want.RNG = &config.RNG{Src: config.DefaultRNGSource}
	want.Disks = []config.Disk{{Path: "/d.img", Readonly: true}}
	want.Vsock = &config.Vsock{CID: guest.DefaultAgentCID} // the agent, by default
	if !reflect.DeepEqual(vm.cfg, want) {
		t.Errorf("config = %+v\nwant %+v", vm.cfg, want)
	}
	if got := vm.requests[0]; got != `PUT vm.resize {"desired_vcpus":8,"desired_ram":2147483648}` {
		t.Errorf("resize request = %s", got)
	}
	if !reflect.DeepEqual(vm.reboots, []string{"api", "guest", "shutdown"}) {
		t.Errorf("reboots = %v", vm.reboots)
	}
	if vm.stops != 1 {
		t.Errorf("Stop called %d times, want 1", vm.stops)
	}
	wantEvents := []string{
		"start " + res.Script,
		"step boot", "ok boot",
		"step look inside", "say the guest has 4 CPUs", "ok look inside",
		"step api", "ok api",
		"PASS " + res.Script,
	}
	if !reflect.DeepEqual(rep.events, wantEvents) {
		t.Errorf("events =\n%s\nwant\n%s", strings.Join(rep.events, "\n"), strings.Join(wantEvents, "\n"))
	}
	if len(res.VMs) != 1 || res.VMs[0].Name != "vm1" || !strings.Contains(res.VMs[0].ConsoleTail, "READY") {
		t.Errorf("VM records = %+v", res.VMs)
	}
}

func TestExpectFailuresReportFileLineStepAndBothValues(t *testing.T) {
	tests := []struct {
		call string
		want string
	}{
		{`expect.eq(3, 4)`, "expect.eq: got 3, want 4"},
		{`expect.eq({0, 1, 2}, {0, 1, 2, 3}, "online CPUs")`, "online CPUs: got {0, 1, 2}, want {0, 1, 2, 3}"},
		{`expect.eq({a = 1}, {a = "1"})`, `got {a = 1}, want {a = "1"}`},
		{`expect.eq("4\n", "4")`, `got "4\n", want "4"`},
		{`expect.ne(1, 1)`, "got 1, want anything else"},
		{`expect.lt(5, 5)`, "got 5, want < 5"},
		{`expect.le(6, 5)`, "got 6, want <= 5"},
		{`expect.gt(nil, 1)`, "got nil, want > 1"},
		{`expect.ge(0.5, 1)`, "got 0.5, want >= 1"},
		{`expect.within(1073741824, 0, 1000, "MemTotal")`, "MemTotal: got 1073741824, want within [0, 1000]"},
		{`expect.match("0-3", "^0-7$")`, `got "0-3", want match for /^0-7$/`},
		{`expect.no_match("error: x", "error")`, `got "error: x", want no match for /error/`},
		{`expect.contains({1, 2}, 3)`, "got {1, 2}, want it to contain 3"},
		{`expect.contains("abc", "d")`, `got "abc", want it to contain "d"`},
		{`expect.truthy(false, "flag")`, "flag: got false, want a true value"},
		{`expect.falsy(0)`, "got 0, want false or nil"},
		{`expect.ok(500, "boom", "resize")`, `resize: got status 500 and error "boom", want a 2xx status and no error`},
		{`expect.ok(204, "late")`, `expect.ok: got status 204 and error "late"`},
		{`fail("custom")`, "custom"},
	}
	for _, tc := range tests {
		t.Run(tc.call, func(t *testing.T) {
			res, _, _ := runScript(t, "step(\"outer\", function()\n  step(\"inner\", function()\n    "+tc.call+"\n  end)\nend)\n")
			se := scriptErr(t, res)
			if se.File != res.Script || se.Line != 3 {
				t.Errorf("location = %s:%d, want %s:3", se.File, se.Line, res.Script)
			}
			if !reflect.DeepEqual(se.Step, []string{"outer", "inner"}) {
				t.Errorf("step = %q, want outer > inner", se.Step)
			}
			if !strings.Contains(se.Message, tc.want) {
				t.Errorf("message = %q, want it to contain %q", se.Message, tc.want)
			}
			wantErr := res.Script + `:3: in step "outer > inner": `
			if !strings.HasPrefix(res.Err.Error(), wantErr) {
				t.Errorf("Error() = %q, want the prefix %q", res.Err.Error(), wantErr)
			}
			if len(res.Steps) != 2 || res.Steps[0].Err == nil || res.Steps[1].Err == nil {
				t.Errorf("both steps should have failed: %+v", res.Steps)
			}
		})
	}
}

func TestExpectPassesOnMatchingValues(t *testing.T) {
	res, _, _ := runScript(t, `
expect.eq({a = {1, 2}, b = "x"}, {b = "x", a = {1, 2}})
expect.eq(nil, nil)
expect.ne({1}, {2})
expect.lt(1, 2); expect.le(2, 2); expect.gt(3, 2); expect.ge(3, 3)
expect.within(5, 5, 6)
expect.match("CPU 4 is now online", "CPU \\d+ is now online")
expect.match(1024, "^1024$")
expect.no_match("ok", "fail")
expect.contains({{1}, {2}}, {2})
expect.truthy(0); expect.falsy(nil)
expect.ok(204, nil); expect.ok(200, nil, "info")
`)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
}

func TestScriptErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name, src string
		line      int
		want      string
	}{
		{"syntax error", "local x = 1\nlocal y = = 2\n", 2, "syntax error"},
		{"unfinished block at the end", "x = 1\nif true then\n", 2, "syntax error at the end of the file"},
		{"unterminated string", "x = 'abc\n", 2, "syntax error: unterminated string"},
		{"calling nil", "\n\nnot_a_function()\n", 3, "attempt to call a non-function object"},
		{"error()", "local x = 1\nerror(\"boom\")\n", 2, "boom"},
		{"arithmetic on nil", "local t = {}\nlocal y = t.x + 1\n", 2, "cannot perform add"},
		{"method called with a dot", "local vm = vmm.start{}\nvm.sh(\"ls\")\n", 2, "vm expected"},
		{"os.exit refused", "os.exit(0)\n", 1, "os.exit is not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _, _ := runScript(t, tc.src)
			se := scriptErr(t, res)
			if se.File != res.Script || se.Line != tc.line {
				t.Errorf("location = %s:%d, want %s:%d (%v)", se.File, se.Line, res.Script, tc.line, se)
			}
			if !strings.Contains(se.Message, tc.want) {
				t.Errorf("message = %q, want %q", se.Message, tc.want)
			}
			if !strings.HasPrefix(res.Err.Error(), res.Script+":") {
				t.Errorf("Error() = %q does not start with the file", res.Err.Error())
			}
		})
	}
}

func TestMissingScriptIsAnError(t *testing.T) {
	r := &Runner{Launcher: &fakeLauncher{}}
	res := r.RunFile(context.Background(), filepath.Join(t.TempDir(), "nope.lua"))
	if se := scriptErr(t, res); !strings.Contains(se.Message, "nope.lua") {
		t.Errorf("message = %q", se.Message)
	}
}

func TestArgumentsAreValidatedWithFakeVM(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown start field", `vmm.start{cpu = 4}`, "unknown field cpu"},
		{"cpus.boot not a number", `vmm.start{cpus = {boot = "four"}}`, "cpus.boot: want an integer"},
		{"unknown cpus field", `vmm.start{cpus = {boot = 1, maxx = 2}}`, "unknown field cpus.maxx"},
		{"fractional cpus", `vmm.start{cpus = 1.5}`, "cpus: want an integer"},
		{"bad size", `vmm.start{memory = {size = "1Q"}}`, "memory.size"},
		{"negative size", `vmm.start{memory = -1}`, "memory: want a size"},
		{"disks not a list", `vmm.start{disks = {path = "/x"}}`, "disks: want a list"},
		{"rng", `vmm.start{rng = "yes"}`, "rng: want true"},
		{"wait", `vmm.start{wait = 1}`, "wait: want a boolean"},
		{"duplicate name", `vmm.start{name = "a"}; vmm.start{name = "a"}`, `name "a" is taken`},
		{"unknown resize field", `vmm.start{}:resize{cpus = 8}`, "unknown field cpus"},
		{"resize vcpus as a string", `vmm.start{}:resize{vcpus = "eight"}`, "vcpus: want an integer"},
		{"resize without a table", `vmm.start{}:resize(8)`, "table expected"},
		{"sh without a command", `vmm.start{}:sh()`, "string expected"},
		{"bad wait_for pattern", `vmm.start{}:wait_for("(")`, "bad pattern"},
		{"wait_for with a number", `vmm.start{}:wait_for(5)`, "a pattern (string) or a function expected"},
		{"bad timeout", `vmm.start{}:sh("ls", {timeout = -1})`, "timeout: want a number of seconds"},
		{"bad via", `vmm.start{}:reboot{via = "magic"}`, `via: want "api" or "guest"`},
		{"step without a function", `step("x")`, "function expected"},
		{"expect.eq with one argument", `expect.eq(1)`, "needs 2 arguments"},
		{"expect.within with an empty range", `expect.within(1, 2, 1)`, "is empty"},
		{"expect.match with a bad pattern", `expect.match("x", "[")`, "bad pattern"},
		{"api body of the wrong type", `vmm.start{}:api("PUT", "vm.resize", 5)`, "body: want a string or a table"},
		{"vmm.size", `vmm.size("big")`, "invalid size"},
		{"sleep", `sleep(-1)`, "seconds between"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _, _ := runScript(t, tc.src)
			se := scriptErr(t, res)
			if !strings.Contains(se.Message, tc.want) {
				t.Errorf("message = %q, want %q", se.Message, tc.want)
			}
			if se.Line != 1 {
				t.Errorf("line = %d, want 1 (%v)", se.Line, se)
			}
		})
	}
}

func TestResizeReturnsTheStatusAndTheAPIMessageWithFakeVM(t *testing.T) {
	l := &fakeLauncher{prepare: func(vm *fakeVM) {
		vm.replies["PUT vm.resize"] = fakeReply{400, `["The VM could not be resized","desired_vcpus 0 is below 1"]`}
	}}
	r := &Runner{Launcher: l}
	res := r.RunFile(context.Background(), writeScript(t, "r.lua", `
local vm = vmm.start{}
local status, err = vm:resize{vcpus = 0}
expect.eq(status, 400)
expect.eq(err, "The VM could not be resized: desired_vcpus 0 is below 1")
local s2, body = vm:api("PUT", "vm.resize", '{"desired_vcpus":"eight"}')
expect.eq(s2, 400)
expect.match(body, "could not be resized")
local s3 = vm:api("put", "vm.resize", {desired_vcpus = 2})
expect.eq(s3, 400)
`))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	reqs := l.vms[0].requests
	want := []string{`PUT vm.resize {"desired_vcpus":0}`, `PUT vm.resize {"desired_vcpus":"eight"}`, `PUT vm.resize {"desired_vcpus":2}`}
	if !reflect.DeepEqual(reqs, want) {
		t.Errorf("requests = %q, want %q", reqs, want)
	}
}

func TestInfoFailsTheScriptOnAnErrorStatusWithFakeVM(t *testing.T) {
	l := &fakeLauncher{prepare: func(vm *fakeVM) { vm.replies["GET vm.info"] = fakeReply{500, `["broken"]`} }}
	r := &Runner{Launcher: l}
	res := r.RunFile(context.Background(), writeScript(t, "i.lua", "local vm = vmm.start{}\nvm:info()\n"))
	se := scriptErr(t, res)
	if se.Line != 2 || !strings.Contains(se.Message, "500 broken") {
		t.Errorf("error = %v", se)
	}
}

func TestRunFailsOnANonZeroStatusWithTheOutputWithFakeVM(t *testing.T) {
	res, _, _ := runScript(t, "local vm = vmm.start{}\nvm:run(\"false\")\n")
	se := scriptErr(t, res)
	if se.Line != 2 || !strings.Contains(se.Message, `"false" exited with status 1`) {
		t.Errorf("error = %v", se)
	}
}

func TestWaitForTimesOutWithFakeVM(t *testing.T) {
	r := &Runner{Launcher: &fakeLauncher{}}
	start := time.Now()
	res := r.RunFile(context.Background(), writeScript(t, "w.lua", `
local vm = vmm.start{}
vm:wait_for(function() return false end, 0.3, 0.05)
`))
	se := scriptErr(t, res)
	if se.Line != 3 || !strings.Contains(se.Message, "condition still false") {
		t.Errorf("error = %v", se)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	res = r.RunFile(context.Background(), writeScript(t, "w3.lua", `
local vm = vmm.start{}
expect.eq(vm:wait_cpus(4).present, {0, 1, 2, 3})
expect.eq(vm:wait_memory(vmm.size("1G")), vmm.size("1G"))
vm:wait_cpus(8, 0.3, 0.05)
`))
	if se := scriptErr(t, res); se.Line != 5 || !strings.Contains(se.Message, "condition still false") {
		t.Errorf("wait_cpus error = %v", se)
	}
	res = r.RunFile(context.Background(), writeScript(t, "w4.lua", "vmm.start{}:wait_memory(vmm.size('2G'), 0.1, 0.05)\n"))
	if se := scriptErr(t, res); !strings.Contains(se.Message, "condition still false") {
		t.Errorf("wait_memory error = %v", se)
	}
	res = r.RunFile(context.Background(), writeScript(t, "w2.lua", "vmm.start{}:wait_for('never', 0.1)\n"))
	if se := scriptErr(t, res); !strings.Contains(se.Message, "never") {
		t.Errorf("error = %v", se)
	}
}

func TestEveryVMIsStoppedWhateverTheOutcomeWithFakeVM(t *testing.T) {
	tests := []struct {
		name, src string
		pass      bool
	}{
		{"pass", "vmm.start{}; vmm.start{}", true},
		{"failed expectation", "vmm.start{}; vmm.start{}; expect.eq(1, 2)", false},
		{"error inside a step", "vmm.start{}; step('s', function() vmm.start{}; error('x') end)", false},
		{"error caught by pcall", "vmm.start{}; pcall(function() vmm.start{}; error('x') end)", true},
		{"explicit stop too", "local vm = vmm.start{}; vm:stop(); vmm.start{}", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, l, _ := runScript(t, tc.src)
			if res.Passed() != tc.pass {
				t.Fatalf("passed = %v, want %v (%v)", res.Passed(), tc.pass, res.Err)
			}
			if len(l.vms) != 2 {
				t.Fatalf("%d VMs, want 2", len(l.vms))
			}
			for _, vm := range l.vms {
				if vm.stops == 0 {
					t.Errorf("%s was not stopped", vm.name)
				}
			}
		})
	}
}

func TestInterruptStopsTheVMsAndNamesTheLineWithFakeVM(t *testing.T) {
	l := &fakeLauncher{prepare: func(vm *fakeVM) { vm.shBlocks = true }}
	r := &Runner{Launcher: l}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(200 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	res := r.RunFile(ctx, writeScript(t, "int.lua", "local vm = vmm.start{}\nstep('hang', function()\n  vm:sh('sleep 1000')\nend)\n"))
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the interrupt took %v", d)
	}
	se := scriptErr(t, res)
	if se.Line != 3 || !errors.Is(ctx.Err(), context.Canceled) || !strings.Contains(se.Message, "context canceled") {
		t.Errorf("error = %v", se)
	}
	if l.vms[0].stops != 1 {
		t.Errorf("the VM was stopped %d times, want 1", l.vms[0].stops)
	}
	// A pure Lua loop is interrupted too.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	res = r.RunFile(ctx2, writeScript(t, "loop.lua", "vmm.start{}\nwhile true do end\n"))
	if se := scriptErr(t, res); se.Line != 2 {
		t.Errorf("loop error = %v", se)
	}
	if l.vms[1].stops != 1 {
		t.Errorf("the loop's VM was stopped %d times, want 1", l.vms[1].stops)
	}
	// Scripts left once the context ended are reported as not run.
	results := r.RunFiles(ctx2, []string{"a.lua"})
	if se := scriptErr(t, results[0]); !strings.Contains(se.Message, "not run") {
		t.Errorf("not run: %v", se)
	}
}

func TestCleanupFailureFailsAPassingScriptWithFakeVM(t *testing.T) {
	l := &fakeLauncher{prepare: func(vm *fakeVM) { vm.stopErr = errors.New("had to be killed") }}
	r := &Runner{Launcher: l}
	res := r.RunFile(context.Background(), writeScript(t, "c.lua", "vmm.start{}\n"))
	if se := scriptErr(t, res); !strings.Contains(se.Message, "cleanup: stop vm1: had to be killed") {
		t.Errorf("error = %v", se)
	}
}

func TestLaunchFailureNamesTheLineWithFakeVM(t *testing.T) {
	r := &Runner{Launcher: &fakeLauncher{fail: errors.New("no kvm")}}
	res := r.RunFile(context.Background(), writeScript(t, "l.lua", "\nvmm.start{}\n"))
	if se := scriptErr(t, res); se.Line != 2 || !strings.Contains(se.Message, "vmm.start: no kvm") {
		t.Errorf("error = %v", se)
	}
}

func TestStepReturnsValuesAndNests(t *testing.T) {
	res, _, rep := runScript(t, `
local a, b = step("a", function()
  return step("b", function() return 1, 2 end)
end)
expect.eq(a + b, 3)
local ok = pcall(step, "c", function() error("caught") end)
expect.falsy(ok)
`)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	want := []string{"step a", "step a > b", "ok a > b", "ok a", "step c", "FAIL c", "PASS " + res.Script}
	if got := rep.events[1:]; !reflect.DeepEqual(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
}

func TestTextReporterShowsStepsNarrationAndFailuresWithFakeVM(t *testing.T) {
	var out bytes.Buffer
	r := &Runner{Launcher: &fakeLauncher{}, Reporter: &TextReporter{W: &out, Verbose: true}}
	p := writeScript(t, "t.lua", `
local vm = vmm.start{cpus = 4}
step("check", function()
  say("looking")
  vm:sh("nproc")
  vm:cpus()
  expect.eq(1, 2, "numbers")
end)
`)
	r.RunFile(context.Background(), p)
	got := out.String()
	for _, want := range []string{
		"=== RUN  " + p,
		"vm1: start: cpus boot=4,max=4 memory size=512M",
		"  > check",
		"    looking",
		"    vm1 # nproc",
		"    vm1 | 4",
		"    vm1 sees: CPUs online 0-3, offline 4-7, present 0-3",
		"  FAIL check",
		"--- FAIL " + p,
		p + `:7: in step "check": numbers: got 1, want 2`,
		"vm1 console (last lines):",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

func TestJUnitReportHasACasePerStepAndTheFailuresWithFakeVM(t *testing.T) {
	r := &Runner{Launcher: &fakeLauncher{}}
	pass := r.RunFile(context.Background(), writeScript(t, "pass.lua", "step('one', function() end)\nstep('two', function() end)\n"))
	failing := r.RunFile(context.Background(), writeScript(t, "fail.lua", "step('one', function() end)\nexpect.eq(1, 2)\n"))
	nosteps := r.RunFile(context.Background(), writeScript(t, "nosteps.lua", "vmm.start{}\n"))
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, []*Result{pass, failing, nosteps}); err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("report is not XML: %v\n%s", err, buf.String())
	}
	if got.Tests != 5 || got.Failures != 1 || len(got.Suites) != 3 {
		t.Fatalf("tests=%d failures=%d suites=%d, want 5, 1, 3\n%s", got.Tests, got.Failures, len(got.Suites), buf.String())
	}
	fs := got.Suites[1]
	if fs.Name != failing.Script || len(fs.Cases) != 2 || fs.Cases[1].Name != scriptCase || fs.Cases[1].Failure == nil {
		t.Fatalf("failing suite = %+v", fs)
	}
	if msg := fs.Cases[1].Failure.Message; !strings.Contains(msg, failing.Script+":2:") || !strings.Contains(msg, "got 1, want 2") {
		t.Errorf("failure message = %q", msg)
	}
	if !strings.Contains(got.Suites[2].SystemOut, "VMM-GUEST-READY") {
		t.Errorf("system-out lacks the console: %q", got.Suites[2].SystemOut)
	}
}

func TestRenderAndDeepEqual(t *testing.T) {
	res, _, _ := runScript(t, `
local cyc = {}; cyc.self = cyc
expect.eq(cyc, cyc)
local ok, err = pcall(expect.eq, cyc, {self = {}})
expect.match(err, "got \\{self = \\{\\.\\.\\.\\}\\}")
ok, err = pcall(expect.eq, {[1] = "a", [3] = "c"}, {})
expect.match(err, '\\[1\\] = "a", \\[3\\] = "c"')
ok, err = pcall(expect.eq, 0.25, 1e20)
expect.match(err, "got 0.25, want 1e\\+20")
`)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
}

func TestLinePrefixerPrefixesWholeLines(t *testing.T) {
	var out bytes.Buffer
	p := newLinePrefixer(&out, "vm1 | ")
	_, _ = p.Write([]byte("one\ntw"))
	_, _ = p.Write([]byte("o\n"))
	if out.String() != "vm1 | one\nvm1 | two\n" {
		t.Errorf("got %q", out.String())
	}
}

func TestEveryScenarioCompiles(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../scenarios/*.lua", "../scenarios/pending/*.lua", "../e2e/testdata/*.lua"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Skip("no scenarios found")
	}
	for _, f := range files {
		L := glua.NewState()
		if _, err := L.LoadFile(f); err != nil {
			t.Errorf("%v", loadError(f, err))
		}
		L.Close()
	}
}

func TestAFailedScriptNamesTheEmulationFaultItsVMShowsWithFakeVM(t *testing.T) {
	l := &fakeLauncher{prepare: func(vm *fakeVM) { vm.emuFault = "vCPU 1 runs with CR3 0x1f0000, outside guest RAM" }}
	r := &Runner{Launcher: l}
	res := r.RunFile(context.Background(), writeScript(t, "e.lua", "local vm = vmm.start{}\nexpect.eq(1, 2, 'one')\n"))
	se := scriptErr(t, res)
	if want := guest.EmulationFaultMarker + "vCPU 1 runs with CR3 0x1f0000, outside guest RAM (vm1)"; !strings.Contains(se.Message, want) {
		t.Errorf("error = %v, want it to say %q", se, want)
	}
	// A passing script is not diagnosed.
	res = r.RunFile(context.Background(), writeScript(t, "p.lua", "vmm.start{}\n"))
	if res.Err != nil {
		t.Errorf("a passing script failed: %v", res.Err)
	}
}

func TestWaitCPUsWaitsOutAReadingWithAnOnlineCPUNotPresentWithFakeVM(t *testing.T) {
	// An eject between the reads of online and present: cpu7 is still
	// online in the first and gone from the second.
	l := &fakeLauncher{prepare: func(vm *fakeVM) {
		vm.cpus = guest.CPUs{Online: []int{0, 1, 7}, Present: []int{0, 1}}
	}}
	r := &Runner{Launcher: l}
	res := r.RunFile(context.Background(), writeScript(t, "w.lua", "vmm.start{}:wait_cpus(2, 0.3, 0.05)\n"))
	if se := scriptErr(t, res); !strings.Contains(se.Message, "condition still false") {
		t.Errorf("wait_cpus took an inconsistent reading: %v", se)
	}
}

func TestDeviceHotPlugMethodsWithFakeVM(t *testing.T) {
	l := &fakeLauncher{prepare: func(vm *fakeVM) {
		vm.replies["PUT vm.add-disk"] = fakeReply{200, `{"id":"data","bdf":"0000:00:05.0"}`}
		vm.replies["PUT vm.add-net"] = fakeReply{409, `["Error from API","The network device could not be added to the VM","Identifier n is not unique"]`}
		vm.replies["PUT vm.remove-device"] = fakeReply{204, ``}
	}}
	r := &Runner{Launcher: l}
	res := r.RunFile(context.Background(), writeScript(t, "d.lua", `
local vm = vmm.start{}
local status, dev, err = vm:add_disk{path = "/d.img", id = "data", readonly = true}
expect.eq(status, 200)
expect.eq(err, nil)
expect.eq(dev.bdf, "0000:00:05.0")
expect.eq(dev.id, "data")
local s2, d2, e2 = vm:add_net{tap = "tap1", id = "n"}
expect.eq(s2, 409)
expect.eq(d2, nil)
expect.match(e2, "not unique")
local s3, e3 = vm:remove_device("data")
expect.eq(s3, 204)
expect.eq(e3, nil)
`))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	want := []string{`PUT vm.add-disk {"id":"data","path":"/d.img","readonly":true}`, `PUT vm.add-net {"id":"n","tap":"tap1"}`, `PUT vm.remove-device {"id":"data"}`}
	if reqs := l.vms[0].requests; !reflect.DeepEqual(reqs, want) {
		t.Errorf("requests = %q, want %q", reqs, want)
	}
}

func TestReadyMarkersAndLogWithFakeVM(t *testing.T) {
	l := &fakeLauncher{prepare: func(f *fakeVM) {
		f.console = "boot\nVMM-GUEST-READY\n# reboot\nVMM-GUEST-READY\n# "
		f.vmmLog = "level=INFO msg=\"Landlock applied\" rules=3\n"
	}}
	r := &Runner{Launcher: l}
	res := r.RunFile(t.Context(), writeScript(t, "markers.lua", `
local vm = vmm.start{}
expect.eq(vm:ready_markers(), 2, "ready markers")
expect.match(vm:log(), "Landlock applied", "the vmm's log")
`))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
}

func TestWaitBlockReturnsTheBoundDeviceAndRefusesABadAddressWithFakeVM(t *testing.T) {
	const ls = "ls /sys/bus/pci/devices/0000:00:03.0/virtio*/block 2>/dev/null; true"
	cases := []struct {
		name, script, wantErr string
		bound                 bool
	}{
		{"bound", `expect.eq(vmm.start{}:wait_block("0000:00:03.0"), "vdb")`, "", true},
		{"never bound", `vmm.start{}:wait_block("0000:00:03.0", 0.3, 0.05)`, "condition still false", false},
		{"not an address", `vmm.start{}:wait_block("0000:00:03.0; reboot")`, "want a PCI address", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := &fakeLauncher{prepare: func(vm *fakeVM) {
				if c.bound {
					vm.shOut[ls] = fakeSh{"vdb", 0}
				}
			}}
			res := (&Runner{Launcher: l}).RunFile(context.Background(), writeScript(t, "b.lua", c.script+"\n"))
			if c.wantErr == "" {
				if res.Err != nil {
					t.Fatalf("wait_block failed: %v", res.Err)
				}
				return
			}
			if se := scriptErr(t, res); !strings.Contains(se.Message, c.wantErr) {
				t.Errorf("error %q, want %q", se.Message, c.wantErr)
			}
		})
	}
}
