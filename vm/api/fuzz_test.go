package api

import (
	"bufio"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm/api/http1"
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
		rec := pipeRoundTrip(t, s, http1.AppendRequest(nil, http1.MethodPut, Prefix+name, nil, body))
		switch rec.Status {
		case http1.StatusNoContent:
			if len(rec.Body) != 0 {
				t.Fatalf("204 with a body %q", rec.Body)
			}
		case http1.StatusBadRequest:
			var msgs []string
			if err := json.Unmarshal(rec.Body, &msgs); err != nil || len(msgs) == 0 {
				t.Fatalf("400 body %q is not a non-empty JSON array of strings: %v", rec.Body, err)
			}
			if len(fb.called()) != 0 {
				t.Fatalf("backend called for a refused body %q", body)
			}
		default:
			t.Fatalf("status %d for %s body %q", rec.Status, name, body)
		}
		if name == RouteResize && rec.Status == http1.StatusNoContent {
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

// pipeRoundTrip sends raw, one request, to s over an in-memory connection
// served as an accepted one, and reads the reply.
func pipeRoundTrip(t *testing.T, s *Server, raw []byte) http1.Reply {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	if !s.conns.add(server) {
		t.Fatal("server closing")
	}
	go s.serveConn(server)
	client.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // a pipe takes deadlines
	go client.Write(raw)                                 //nolint:errcheck // the reply tells
	rep, err := http1.ReadReply(bufio.NewReader(client), http1.MethodPut, 1<<20)
	if err != nil {
		t.Fatalf("reply to %q: %v", raw, err)
	}
	return rep
}
