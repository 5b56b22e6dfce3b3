package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/guest"
)

// What the API specs share: a vmm started by hand with an API socket, and
// curl and vmmctl run against it, as a user would.

// apiVMM is a vmm process started by an API spec with the given flags
// (guest.Start always passes --kernel; these specs also start vmm with only
// --api-socket). Its console is driven with guest's Console and Shell.
type apiVMM struct {
	cmd     *exec.Cmd
	sock    string
	console *guest.Console
	shell   *guest.Shell
	stderr  *lockedBuffer
	done    chan struct{}
	err     error // the process's exit, once done is closed
}

// lockedBuffer is a strings.Builder safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// apiSocketPath is a fresh socket path in a directory of its own.
func apiSocketPath() string {
	dir, err := os.MkdirTemp("", "api")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	return filepath.Join(dir, "vmm.sock")
}

// startAPIVMM starts vmm with args plus --api-socket sock. It is stopped
// (SIGTERM, then SIGKILL) when the spec or container ends.
func startAPIVMM(sock string, args ...string) *apiVMM {
	v := &apiVMM{sock: sock, console: guest.NewConsole(nil), stderr: &lockedBuffer{}, done: make(chan struct{})}
	v.cmd = exec.Command(guest.ResolvePaths().Vmm, append(args, "--api-socket", sock)...)
	v.cmd.Stdout = v.console
	v.cmd.Stderr = v.stderr
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := v.cmd.StdinPipe()
	Expect(err).NotTo(HaveOccurred())
	v.shell = guest.NewShell(stdin, v.console)
	Expect(v.cmd.Start()).To(Succeed())
	go func() {
		v.err = v.cmd.Wait()
		v.console.Close(v.err)
		close(v.done)
	}()
	DeferCleanup(func() {
		if v.exited() {
			return
		}
		_ = v.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-v.done:
		case <-time.After(20 * time.Second):
			_ = v.cmd.Process.Kill()
			<-v.done
		}
	})
	return v
}

func (v *apiVMM) exited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// logs is the vmm's log and console tail, for failure messages.
func (v *apiVMM) logs() string {
	return fmt.Sprintf("\nvmm log:\n%s\nconsole:\n%s", v.stderr.String(), v.console.Tail(30))
}

// failure is what a failure message says after err, a wait on the guest
// that failed: as guest.Machine's, the vmm's state dump when the wait ran
// out of time (a guest that stopped answering), its log and console, and
// the emulation fault they show in the emulated KVM host (which the e2e
// runner retries).
func (v *apiVMM) failure(err error) string {
	dump := ""
	if errors.Is(err, context.DeadlineExceeded) && !v.exited() {
		dump = "\nvmm" + guest.DumpState(v.cmd.Process, v.stderr.String, 3)
	}
	note := ""
	if why := guest.LoadEmulationSignatures().Match(v.stderr.String()); why != "" {
		note = "\n" + guest.EmulationFaultMarker + why
	}
	return v.logs() + dump + note
}

// waitAPI waits until vmm.ping answers 200.
func (v *apiVMM) waitAPI() {
	GinkgoHelper()
	Eventually(func() int {
		if v.exited() {
			StopTrying("vmm exited before its API answered: " + fmt.Sprint(v.err) + v.logs()).Now()
		}
		return curlStatus("--unix-socket", v.sock, "http://localhost/api/v1/vmm.ping")
	}).WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).Should(Equal(200), v.logs)
}

// waitConsole waits for re on the console from offset from on.
func (v *apiVMM) waitConsole(ctx context.Context, from int, re string, timeout time.Duration) {
	GinkgoHelper()
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, _, err := v.console.WaitFor(c, from, regexp.MustCompile(re))
	if err != nil {
		Fail(fmt.Sprintf("waiting for %s on the console: %v%s", re, err, v.failure(err)))
	}
}

// sh runs cmd in the guest's shell and expects status 0.
func (v *apiVMM) sh(ctx context.Context, cmd string) string {
	GinkgoHelper()
	c, cancel := context.WithTimeout(ctx, apiCmdTimeout)
	defer cancel()
	out, err := v.shell.Check(c, cmd)
	if err != nil {
		Fail(fmt.Sprintf("%s: %v%s", cmd, err, v.failure(err)))
	}
	return out
}

// curlReply is what curl -i printed: the final status, headers and body.
type curlReply struct {
	status int
	header map[string]string // lower-case names
	body   string
	raw    string
}

// messages decodes an error body, which must be a non-empty JSON array of
// strings.
func (r curlReply) messages() []string {
	GinkgoHelper()
	var msgs []string
	Expect(json.Unmarshal([]byte(r.body), &msgs)).To(Succeed(), "error body %q is not a JSON array of strings", r.body)
	Expect(msgs).NotTo(BeEmpty(), "error body")
	return msgs
}

// parseCurlI parses the output of curl -i (skipping 100 Continue blocks).
func parseCurlI(out string) curlReply {
	r := curlReply{raw: out, header: map[string]string{}}
	rest := out
	for strings.HasPrefix(rest, "HTTP/") {
		head, body, _ := strings.Cut(rest, "\r\n\r\n")
		lines := strings.Split(head, "\r\n")
		if f := strings.Fields(lines[0]); len(f) >= 2 {
			fmt.Sscanf(f[1], "%d", &r.status)
		}
		r.header = map[string]string{}
		for _, l := range lines[1:] {
			if k, val, ok := strings.Cut(l, ":"); ok {
				r.header[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(val)
			}
		}
		r.body, rest = body, body
		if r.status != 100 {
			break
		}
	}
	return r
}

// curlI runs curl -s -i with args and parses the reply.
func curlI(args ...string) curlReply {
	GinkgoHelper()
	out, err := exec.Command("curl", append([]string{"-s", "-i"}, args...)...).Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		Fail(fmt.Sprintf("curl: %v", err))
	}
	return parseCurlI(string(out))
}

// curlStatus runs curl and returns only the status code (0 when there was
// no reply).
func curlStatus(args ...string) int {
	out, _ := exec.Command("curl", append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}"}, args...)...).Output()
	var code int
	fmt.Sscanf(strings.TrimSpace(string(out)), "%d", &code)
	return code
}

// curlLine runs one shell command line from the guide with its socket
// replaced by sock, and parses the reply (the guide's lines use -i).
func curlLine(line, sock string) curlReply {
	GinkgoHelper()
	line = strings.ReplaceAll(line, guideSocket, sock)
	out, err := exec.Command("sh", "-c", line).Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		Fail(fmt.Sprintf("%s: %v", line, err))
	}
	return parseCurlI(string(out))
}

// apiPut sends PUT /api/v1/route with curl, with body when given.
func apiPut(sock, route string, body ...string) curlReply {
	GinkgoHelper()
	args := []string{"-XPUT", "--unix-socket", sock}
	if len(body) > 0 {
		args = append(args, "-H", "Content-Type: application/json", "-d", body[0])
	}
	return curlI(append(args, "http://localhost/api/v1/"+route)...)
}

// apiGet sends GET /api/v1/route with curl.
func apiGet(sock, route string) curlReply {
	GinkgoHelper()
	return curlI("--unix-socket", sock, "http://localhost/api/v1/"+route)
}

// vmInfo reads vm.info with curl and expects 200.
func vmInfo(sock string) map[string]any {
	GinkgoHelper()
	r := apiGet(sock, "vm.info")
	Expect(r.status).To(Equal(200), r.raw)
	var info map[string]any
	Expect(json.Unmarshal([]byte(r.body), &info)).To(Succeed())
	return info
}

// vmmctl runs the vmmctl binary on sock and returns its exit status,
// stdout and stderr.
func vmmctl(sock string, args ...string) (int, string, string) {
	GinkgoHelper()
	cmd := exec.Command(guest.ResolvePaths().Vmmctl, append([]string{"--api-socket", sock}, args...)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errOut.String()
	case err != nil:
		Fail(fmt.Sprintf("vmmctl: %v", err))
	}
	return 0, out.String(), errOut.String()
}

// guestConfigJSON is a vm.create body for the project's guest.
func guestConfigJSON(bootVCPUs, maxVCPUs int) string {
	GinkgoHelper()
	p := guest.ResolvePaths()
	cfg := map[string]any{
		"payload": map[string]any{"kernel": p.Kernel, "initramfs": p.Initramfs, "cmdline": guest.DefaultCmdline},
		"cpus":    map[string]any{"boot_vcpus": bootVCPUs, "max_vcpus": maxVCPUs},
		"memory":  map[string]any{"size": 1 << 30},
		"serial":  map[string]any{"mode": "Tty"},
	}
	data, err := json.Marshal(cfg)
	Expect(err).NotTo(HaveOccurred())
	return string(data)
}
