package config

import (
	"flag"
	"testing"

	"github.com/vmmdev/vmm/internal/gendoc"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/compatibility.md")

// docs/compatibility.md's table is the support table's; -update rewrites
// it.
func TestCompatibilityDocIsTheSupportTable(t *testing.T) {
	const begin = "<!-- BEGIN generated from vm/config's support table: go test ./vm/config -run TestCompatibilityDoc -update -->"
	if err := gendoc.Section("../../docs/compatibility.md", begin, SupportMarkdown(), *update); err != nil {
		t.Fatalf("%v; run go test ./vm/config -run TestCompatibilityDoc -update", err)
	}
}
