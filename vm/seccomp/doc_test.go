package seccomp

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/security.md")

// Marker lines around the generated filters in docs/security.md.
const (
	docBegin = "<!-- BEGIN generated from vm/seccomp's filters: go test ./vm/seccomp -run TestSecurityDoc -update -->"
	docEnd   = "<!-- END generated -->"
)

// docs/security.md lists the filters as they are; -update rewrites it.
func TestSecurityDocListsTheFilters(t *testing.T) {
	const path = "../../docs/security.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	begin, end := strings.Index(doc, docBegin+"\n"), strings.Index(doc, docEnd+"\n")
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the markers %q and %q", path, docBegin, docEnd)
	}
	want := docBegin + "\n\n" + Markdown() + "\n"
	if doc[begin:end] == want {
		return
	}
	if !*update {
		t.Fatalf("%s differs from the filters; run go test ./vm/seccomp -run TestSecurityDoc -update", path)
	}
	if err := os.WriteFile(path, []byte(doc[:begin]+want+doc[end:]), 0o644); err != nil {
		t.Fatal(err)
	}
}
