// Package gendoc keeps the generated parts of the docs in step with the
// code they describe: a section between two marker lines is compared with
// what the code generates now, and rewritten on request.
package gendoc

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// End is the marker line that closes every generated section.
const End = "<!-- END generated -->"

// ErrStale reports a section that differs from the generated text.
var ErrStale = errors.New("generated section is out of date")

// Section checks that the file at path holds, between the line begin and
// the line End, a blank line and then generated. When it differs and
// update is set, Section rewrites the section; otherwise it returns an
// error wrapping ErrStale.
func Section(path, begin, generated string, update bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(data)
	from, to := strings.Index(doc, begin+"\n"), strings.Index(doc, End+"\n")
	if from < 0 || to < from {
		return fmt.Errorf("%s lacks the markers %q and %q", path, begin, End)
	}
	want := begin + "\n\n" + generated + "\n"
	if doc[from:to] == want {
		return nil
	}
	if !update {
		return fmt.Errorf("%s: %w", path, ErrStale)
	}
	return os.WriteFile(path, []byte(doc[:from]+want+doc[to:]), 0o644)
}
