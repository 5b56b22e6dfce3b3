package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// recorded is one request as the server got it.
type recorded struct{ method, path, body string }

// recordingServer answers every request with 204 (GETs with {}) and keeps
// what it got.
func recordingServer(t *testing.T) (string, func() []recorded) {
	t.Helper()
	sock := filepath.Join(shortDir(t), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []recorded
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, recorded{r.Method, r.URL.Path, string(b)})
		mu.Unlock()
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"build_version":"v","version":"1","pid":1,"features":[]}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return sock, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), got...)
	}
}

// shortDir is a temporary directory whose path fits a unix socket's.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// TestCHRemoteLinesWorkWithTheProgramNameChanged runs ch-remote's command
// lines (section 8 of Cloud Hypervisor's ch-remote) as vmmctl's and checks
// the request each sends: method, route and body.
func TestCHRemoteLinesWorkWithTheProgramNameChanged(t *testing.T) {
	for _, c := range []struct {
		line  string
		stdin string
		want  recorded
	}{
		{"resize --cpus 4", "", recorded{"PUT", "/api/v1/vm.resize", `{"desired_vcpus":4,"desired_ram":null,"desired_balloon":null}`}},
		{"resize --memory 2G", "", recorded{"PUT", "/api/v1/vm.resize", `{"desired_vcpus":null,"desired_ram":2147483648,"desired_balloon":null}`}},
		{"resize --cpus 8 --memory 512M", "", recorded{"PUT", "/api/v1/vm.resize", `{"desired_vcpus":8,"desired_ram":536870912,"desired_balloon":null}`}},
		{"resize --cpus=2 --balloon 1G", "", recorded{"PUT", "/api/v1/vm.resize", `{"desired_vcpus":2,"desired_ram":null,"desired_balloon":1073741824}`}},
		{"ping", "", recorded{"GET", "/api/v1/vmm.ping", ""}},
		{"info", "", recorded{"GET", "/api/v1/vm.info", ""}},
		{"boot", "", recorded{"PUT", "/api/v1/vm.boot", ""}},
		{"shutdown", "", recorded{"PUT", "/api/v1/vm.shutdown", ""}},
		{"reboot", "", recorded{"PUT", "/api/v1/vm.reboot", ""}},
		{"pause", "", recorded{"PUT", "/api/v1/vm.pause", ""}},
		{"resume", "", recorded{"PUT", "/api/v1/vm.resume", ""}},
		{"power-button", "", recorded{"PUT", "/api/v1/vm.power-button", ""}},
		{"delete", "", recorded{"PUT", "/api/v1/vm.delete", ""}},
		{"shutdown-vmm", "", recorded{"PUT", "/api/v1/vmm.shutdown", ""}},
		{"create", `{"payload":{"kernel":"/k"}}`, recorded{"PUT", "/api/v1/vm.create", `{"payload":{"kernel":"/k"}}`}},
		{"create -", `{"payload":{"kernel":"/k"}}`, recorded{"PUT", "/api/v1/vm.create", `{"payload":{"kernel":"/k"}}`}},
	} {
		sock, got := recordingServer(t)
		args := append([]string{"--api-socket", sock}, strings.Fields(c.line)...)
		code, _, errOut := runCtl(t, nil, c.stdin, args...)
		if code != exitOK {
			t.Errorf("%s: exit %d: %s", c.line, code, errOut)
			continue
		}
		reqs := got()
		if len(reqs) != 1 || reqs[0] != c.want {
			t.Errorf("ch-remote --api-socket S %s:\n sent %+v\n want %+v", c.line, reqs, c.want)
		}
	}
}
