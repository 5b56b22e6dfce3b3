package lua

import (
	"fmt"
	"regexp"
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// expectTable is the expect.* assertions. Each fails the script at the
// caller's line with both values and the optional message; the runner adds
// the step.
func (rn *run) expectTable() *glua.LTable {
	L := rn.L
	return L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"eq":       expectEq,
		"ne":       expectNe,
		"lt":       compare("lt", "<", func(a, b float64) bool { return a < b }),
		"le":       compare("le", "<=", func(a, b float64) bool { return a <= b }),
		"gt":       compare("gt", ">", func(a, b float64) bool { return a > b }),
		"ge":       compare("ge", ">=", func(a, b float64) bool { return a >= b }),
		"within":   expectWithin,
		"match":    matcher("match", true),
		"no_match": matcher("no_match", false),
		"contains": expectContains,
		"truthy":   truthiness("truthy", true),
		"falsy":    truthiness("falsy", false),
		"ok":       expectOK,
	})
}

// failExpect raises "msg: got ..., want ..." (or "expect.NAME: ..." without a
// message) at the caller's line.
func failExpect(L *glua.LState, name, msg, format string, args ...any) {
	what := "expect." + name
	if msg != "" {
		what = msg
	}
	L.RaiseError("%s: %s", what, fmt.Sprintf(format, args...))
}

// optMsg reads the optional message at n.
func optMsg(L *glua.LState, n int) string {
	switch v := L.Get(n).(type) {
	case *glua.LNilType:
		return ""
	case glua.LString:
		return string(v)
	case glua.LNumber:
		return v.String()
	}
	L.ArgError(n, "message: a string expected")
	return ""
}

// checkArgs fails unless at least n arguments were given, so that a
// forgotten argument is not taken as nil.
func checkArgs(L *glua.LState, name string, n int) {
	if L.GetTop() < n {
		L.RaiseError("expect.%s needs %d arguments, got %d", name, n, L.GetTop())
	}
}

// expect.eq(actual, expected [, msg]): equal, tables by contents.
func expectEq(L *glua.LState) int {
	checkArgs(L, "eq", 2)
	a, e, msg := L.Get(1), L.Get(2), optMsg(L, 3)
	if !deepEqual(a, e) {
		failExpect(L, "eq", msg, "got %s, want %s", render(a), render(e))
	}
	return 0
}

// expect.ok(status, err [, msg]): an API call's results (vm:resize's, say)
// show success: no error and a 2xx status.
func expectOK(L *glua.LState) int {
	checkArgs(L, "ok", 2)
	status, err, msg := L.Get(1), L.Get(2), optMsg(L, 3)
	n, isNumber := status.(glua.LNumber)
	if err != glua.LNil || !isNumber || n < 200 || n > 299 {
		failExpect(L, "ok", msg, "got status %s and error %s, want a 2xx status and no error", render(status), render(err))
	}
	return 0
}

// expect.ne(actual, other [, msg]): not equal.
func expectNe(L *glua.LState) int {
	checkArgs(L, "ne", 2)
	a, e, msg := L.Get(1), L.Get(2), optMsg(L, 3)
	if deepEqual(a, e) {
		failExpect(L, "ne", msg, "got %s, want anything else", render(a))
	}
	return 0
}

// compare is expect.lt and friends: (actual, bound [, msg]) on numbers.
func compare(name, op string, ok func(a, b float64) bool) glua.LGFunction {
	return func(L *glua.LState) int {
		checkArgs(L, name, 2)
		a, msg := L.Get(1), optMsg(L, 3)
		bound := float64(L.CheckNumber(2))
		n, isNum := a.(glua.LNumber)
		if !isNum || !ok(float64(n), bound) {
			failExpect(L, name, msg, "got %s, want %s %s", render(a), op, renderNumber(bound))
		}
		return 0
	}
}

// expect.within(actual, lo, hi [, msg]): lo <= actual <= hi.
func expectWithin(L *glua.LState) int {
	checkArgs(L, "within", 3)
	a, msg := L.Get(1), optMsg(L, 4)
	lo, hi := float64(L.CheckNumber(2)), float64(L.CheckNumber(3))
	if lo > hi {
		L.ArgError(3, fmt.Sprintf("the range [%s, %s] is empty", renderNumber(lo), renderNumber(hi)))
	}
	n, isNum := a.(glua.LNumber)
	if !isNum || float64(n) < lo || float64(n) > hi {
		failExpect(L, "within", msg, "got %s, want within [%s, %s]", render(a), renderNumber(lo), renderNumber(hi))
	}
	return 0
}

// matcher is expect.match and expect.no_match: (s, pattern [, msg]) with a
// Go regular expression (RE2 syntax).
func matcher(name string, want bool) glua.LGFunction {
	return func(L *glua.LState) int {
		checkArgs(L, name, 2)
		a, msg := L.Get(1), optMsg(L, 3)
		re, err := regexp.Compile(L.CheckString(2))
		if err != nil {
			L.ArgError(2, "bad pattern: "+err.Error())
		}
		s, isStr := a.(glua.LString)
		if n, isNum := a.(glua.LNumber); isNum {
			s, isStr = glua.LString(n.String()), true
		}
		if !isStr || re.MatchString(string(s)) != want {
			neg := ""
			if !want {
				neg = "no "
			}
			failExpect(L, name, msg, "got %s, want %smatch for /%s/", render(a), neg, re)
		}
		return 0
	}
}

// expect.contains(list_or_string, item [, msg]): a list holding item (by
// expect.eq's equality) or a string holding item as a substring.
func expectContains(L *glua.LState) int {
	checkArgs(L, "contains", 2)
	h, item, msg := L.Get(1), L.Get(2), optMsg(L, 3)
	found := false
	switch t := h.(type) {
	case glua.LString:
		if s, ok := item.(glua.LString); ok {
			found = strings.Contains(string(t), string(s))
		}
	case *glua.LTable:
		t.ForEach(func(_, v glua.LValue) { found = found || deepEqual(v, item) })
	}
	if !found {
		failExpect(L, "contains", msg, "got %s, want it to contain %s", render(h), render(item))
	}
	return 0
}

// truthiness is expect.truthy and expect.falsy: (v [, msg]).
func truthiness(name string, want bool) glua.LGFunction {
	return func(L *glua.LState) int {
		checkArgs(L, name, 1)
		v, msg := L.Get(1), optMsg(L, 2)
		if glua.LVAsBool(v) != want {
			kind := "a true value"
			if !want {
				kind = "false or nil"
			}
			failExpect(L, name, msg, "got %s, want %s", render(v), kind)
		}
		return 0
	}
}
