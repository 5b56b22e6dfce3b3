package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/compatibility.md")

// Marker lines around the generated table in docs/compatibility.md.
const (
	docBegin = "<!-- BEGIN generated from vm/config's support table: go test ./vm/config -run TestCompatibilityDoc -update -->"
	docEnd   = "<!-- END generated -->"
)

// docs/compatibility.md's table is the support table's; -update rewrites
// it.
func TestCompatibilityDocIsTheSupportTable(t *testing.T) {
	const path = "../../docs/compatibility.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	begin, end := strings.Index(doc, docBegin+"\n"), strings.Index(doc, docEnd+"\n")
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the markers %q and %q", path, docBegin, docEnd)
	}
	want := docBegin + "\n\n" + SupportMarkdown() + "\n"
	if doc[begin:end] == want {
		return
	}
	if !*update {
		t.Fatalf("%s differs from the support table; run go test ./vm/config -run TestCompatibilityDoc -update", path)
	}
	if err := os.WriteFile(path, []byte(doc[:begin]+want+doc[end:]), 0o644); err != nil {
		t.Fatal(err)
	}
}
