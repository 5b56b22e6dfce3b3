package api

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestOpenAPIDocumentMatchesRegisteredRoutes(t *testing.T) {
	ops, err := parseOpenAPIPaths(OpenAPIDocument())
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]documentedOperation{}
	for _, op := range ops {
		key := op.Method + " " + op.Path
		if _, dup := documented[key]; dup {
			t.Errorf("openapi.yaml documents %s twice", key)
		}
		documented[key] = op
	}
	registered := map[string]route{}
	for _, rt := range routes() {
		registered[rt.method+" /"+rt.name] = rt
	}
	for key := range registered {
		if _, ok := documented[key]; !ok {
			t.Errorf("route %s is registered but missing from openapi.yaml", key)
		}
	}
	for key := range documented {
		if _, ok := registered[key]; !ok {
			t.Errorf("openapi.yaml documents %s, which the server does not register", key)
		}
	}
	// Every operation documents its success and the statuses every route
	// can answer.
	for key, op := range documented {
		rt, ok := registered[key]
		if !ok {
			continue
		}
		want := []string{"405"}
		switch {
		case rt.name == RoutePing:
			want = append(want, "200")
		case rt.name == RouteInfo:
			want = append(want, "200", "404", "500")
		case rt.name == RouteShutdownVMM:
			want = append(want, "200", "400", "500")
		default:
			want = append(want, "204", "400", "500")
		}
		if rt.name == RouteCreate {
			want = append(want, "409")
		}
		if rt.body == bodyJSON {
			want = append(want, "413")
		}
		if rt.name == RouteResize {
			want = append(want, "429", "404")
		}
		for _, st := range want {
			if !slices.Contains(op.Statuses, st) {
				t.Errorf("openapi.yaml: %s does not document status %s (has %v)", key, st, op.Statuses)
			}
		}
	}
}

func TestParseOpenAPIPathsRejectsWhatItCannotPlace(t *testing.T) {
	for _, doc := range []string{
		"paths:\n  vm.info:\n    get:\n",
		"paths:\n  /vm.info:\n    fetch:\n",
	} {
		if _, err := parseOpenAPIPaths(doc); err == nil {
			t.Errorf("parsed %q", doc)
		}
	}
	ops, err := parseOpenAPIPaths(strings.Join([]string{
		"openapi: 3.0.3",
		"paths:",
		"  /a:",
		"    get:",
		"      responses:",
		`        "200":`,
		"          description: ok",
		"components:",
		"  schemas:",
		"    X:",
		"      type: object",
	}, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 1 || ops[0].Path != "/a" || ops[0].Method != "GET" || !slices.Equal(ops[0].Statuses, []string{"200"}) {
		t.Errorf("ops = %+v", ops)
	}
}

var update = flag.Bool("update", false, "rewrite the generated parts of openapi.yaml")

// The VmConfig schemas of openapi.yaml are those generated from package
// config's types and support table; -update rewrites them.
func TestOpenAPIDocumentHasTheGeneratedConfigSchemas(t *testing.T) {
	doc := OpenAPIDocument()
	begin, end := strings.Index(doc, schemasBegin+"\n"), strings.Index(doc, schemasEnd+"\n")
	if begin < 0 || end < begin {
		t.Fatalf("openapi.yaml lacks the markers %q and %q", schemasBegin, schemasEnd)
	}
	want := configSchemas()
	got := doc[begin : end+len(schemasEnd)+1]
	if got == want {
		return
	}
	if !*update {
		t.Fatalf("openapi.yaml's VmConfig schemas differ from the support table's; run go test ./vm/api -run TestOpenAPIDocument -update")
	}
	if err := os.WriteFile("openapi.yaml", []byte(doc[:begin]+want+doc[end+len(schemasEnd)+1:]), 0o644); err != nil {
		t.Fatal(err)
	}
}
