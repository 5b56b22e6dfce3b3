package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestVMMLinksNoHTTPLibraryNorCrypto keeps net/http, and the TLS,
// certificate and random-number code it and crypto/rand bring, out of the
// vmm binary: they were 4.6 of its 11.6 MB and some 2.5 MiB of its resident
// pages. The API speaks HTTP/1.1 through vm/api/http1.
func TestVMMLinksNoHTTPLibraryNorCrypto(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "net/http" || strings.HasPrefix(pkg, "net/http/") || pkg == "crypto" || strings.HasPrefix(pkg, "crypto/") {
			t.Errorf("vmm links %s", pkg)
		}
	}
}
