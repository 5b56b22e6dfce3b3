package seccomp

import (
	"flag"
	"testing"

	"github.com/vmmdev/vmm/internal/gendoc"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/security.md")

// docs/security.md lists the filters as they are; -update rewrites it.
func TestSecurityDocListsTheFilters(t *testing.T) {
	const begin = "<!-- BEGIN generated from vm/seccomp's filters: go test ./vm/seccomp -run TestSecurityDoc -update -->"
	if err := gendoc.Section("../../docs/security.md", begin, Markdown(), *update); err != nil {
		t.Fatalf("%v; run go test ./vm/seccomp -run TestSecurityDoc -update", err)
	}
}
