package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzDecodeBody sends arbitrary bodies to the routes that decode one
// (vm.resize, vm.create) and to a body-less action, through the server's
// handler with a fakeBackend. Whatever the bytes, the reply is 204 or 400,
// a 400 carries a JSON array of strings, and a resize the server accepts
// has values in range.
//
//	go test -run='^$' -fuzz=FuzzDecodeBody -fuzztime=10s ./vm/api
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		`{"desired_vcpus":8}`,
		`{ "desired_vcpus": 4, "desired_ram" : 3221225472}`,
		`{"desired_vcpus":"eight"}`,
		`{"desired_vcpus":-1,"desired_ram":0}`,
		`{"desired_balloon":0}`,
		`{"desired_cpus":8}`,
		`{}`, `[]`, `null`, ``, `{`, `{"a":1} x`,
		`{"payload":{"kernel":"/k","cmdline":"console=ttyS0"},"cpus":{"boot_vcpus":2,"max_vcpus":4},"memory":{"size":1073741824,"hotplug_size":8589934592},"disks":[{"path":"d.img"}],"net":[{"tap":""}],"rng":{"src":"/dev/urandom"},"serial":{"mode":"Tty"},"console":{"mode":"Off"}}`,
		`{"memory":{"size":-1}}`,
		`{"serial":{"mode":7}}`,
	} {
		for route := range 3 {
			f.Add(uint8(route), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		fb := newFakeBackend()
		s := newServer(fb, Options{Logger: discardLogger()})
		defer s.cancel()
		name := []string{RouteResize, RouteCreate, RoutePause}[int(which)%3]
		req := httptest.NewRequest(http.MethodPut, Prefix+name, bytes.NewReader(body))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusNoContent:
			if rec.Body.Len() != 0 {
				t.Fatalf("204 with a body %q", rec.Body.Bytes())
			}
		case http.StatusBadRequest:
			var msgs []string
			if err := json.Unmarshal(rec.Body.Bytes(), &msgs); err != nil || len(msgs) == 0 {
				t.Fatalf("400 body %q is not a non-empty JSON array of strings: %v", rec.Body.Bytes(), err)
			}
			if len(fb.called()) != 0 {
				t.Fatalf("backend called for a refused body %q", body)
			}
		default:
			t.Fatalf("status %d for %s body %q", rec.Code, name, body)
		}
		if name == RouteResize && rec.Code == http.StatusNoContent {
			r := fb.resized
			if r == nil {
				t.Fatal("accepted resize did not reach the backend")
			}
			if (r.DesiredVCPUs != nil && *r.DesiredVCPUs < 1) || (r.DesiredRAM != nil && *r.DesiredRAM < 1) || (r.DesiredBalloon != nil && *r.DesiredBalloon < 0) {
				t.Fatalf("out-of-range resize accepted: %q", body)
			}
		}
	})
}
