package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmmdev/vmm/bench"
	"github.com/vmmdev/vmm/guest"
	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api"
	"github.com/vmmdev/vmm/vm/config"
)

// The hot plug benchmark: vmm and QEMU (q35, the same kernel and
// initramfs, in the same KVM host) take turns, each run on a fresh guest
// with 2 of 6 vCPUs and 1 GiB with room for 8 GiB more. Every value is
// printed as a BENCHDATA line (package bench) for cmd/benchreport; the
// spec fails only when a measurement could not be taken, never on time.
// It runs with VMM_BENCH set (make bench), QEMU's half when VMM_QEMU names
// a qemu-system-x86_64 (or a wrapper that runs one).

const (
	benchBootVCPUs = 2
	benchMaxVCPUs  = 6
	benchRAM       = 1 << 30
	benchHotplug   = 8 << 30
	// benchGuestMapping is the size from which a mapping of the VMM
	// process counts as guest memory when its overhead is measured.
	benchGuestMapping = 128 << 20
	// benchPings is how many API round trips are timed per run: the p99
	// is the tenth slowest.
	benchPings = 1000
)

// hotplugGuest is what the benchmark needs from a VMM running a guest.
type hotplugGuest interface {
	consoleGuest // name() is "vmm" or "qemu"
	pid() int
	sh(ctx context.Context, cmd string) string
	memTotal(ctx context.Context) (uint64, error) // the guest's MemTotal in bytes
	addCPUs(ctx context.Context, from, to int)
	removeCPUs(ctx context.Context, from, to int)
	addRAM(ctx context.Context, bytes int64)
	ping(ctx context.Context) // one API round trip
	stop()
}

// benchRuns skips the calling benchmark unless VMM_BENCH is set (make
// bench), and returns how many runs to take: VMM_BENCH_RUNS, else def.
func benchRuns(def int) int {
	GinkgoHelper()
	if os.Getenv("VMM_BENCH") == "" {
		Skip("set VMM_BENCH=1 to run the benchmarks (make bench)")
	}
	if n, err := strconv.Atoi(os.Getenv("VMM_BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return def
}

func emit(metric, unit, who string, v float64) {
	GinkgoWriter.Println(bench.Sample{Metric: metric, Unit: unit, VMM: who, Value: v}.Line())
}

func emitDuration(metric, who string, d time.Duration) {
	emit(metric, "ms", who, float64(d.Microseconds())/1000)
}

var _ = Describe("hot plug beside QEMU", Label("benchmark"), Serial, func() {
	It("reports CPU and memory hot plug latency, VMM overhead and API round trips", func(ctx SpecContext) {
		runs := benchRuns(5)
		if benchProfiling() {
			enableExitTracing()
		}
		qemu := os.Getenv("VMM_QEMU")
		starters := []func(context.Context) hotplugGuest{startVmmBench}
		if qemu != "" {
			starters = append(starters, func(ctx context.Context) hotplugGuest { return startQEMUBench(ctx, qemu) })
		}
		ok := takeTurns(ctx, "hot plug", runs, starters, measureHotplug)
		Expect(ok).To(BeNumerically(">", 0), "every run failed")
	}, SpecTimeout(25*time.Minute))
})

// measureHotplug takes one run's measurements on a booted guest.
func measureHotplug(ctx context.Context, g hotplugGuest) {
	GinkgoHelper()
	who := g.name()
	all := fmt.Sprintf("0-%d", benchMaxVCPUs-1)
	boot := fmt.Sprintf("0-%d", benchBootVCPUs-1)

	// Idle after boot: the VMM's own memory, the guest's left out.
	time.Sleep(2 * time.Second)
	total, guestMem, err := rssSplit(g.pid())
	Expect(err).NotTo(HaveOccurred())
	emit("VMM overhead: RSS minus guest memory; idle", "MiB", who, float64(total-guestMem)/(1<<20))

	var stats map[string]uint64
	if benchProfiling() {
		stats = kvmStats(g.pid())
	}
	g.ping(ctx) // untimed: vmm's first one also opens the connection
	pings := make([]time.Duration, 0, benchPings)
	start := time.Now()
	for range benchPings {
		t0 := time.Now()
		g.ping(ctx)
		pings = append(pings, time.Since(t0))
	}
	if benchProfiling() {
		profileStep(fmt.Sprintf("%d API round trips in %v", benchPings, time.Since(start).Round(time.Millisecond)), who, g.pid(), stats)
		profilePings(who, pings)
	}
	sort.Slice(pings, func(i, j int) bool { return pings[i] < pings[j] })
	emit("API round trip p50 (vmm.ping; QMP query-status)", "us", who, float64(pings[len(pings)/2].Nanoseconds())/1e3)
	emit("API round trip p99", "us", who, float64(pings[len(pings)*99/100].Nanoseconds())/1e3)

	g.sh(ctx, "echo online > /sys/devices/system/memory/auto_online_blocks")
	waitGuest := func(cmd, want string) {
		GinkgoHelper()
		Eventually(func(ctx context.Context) string { return g.sh(ctx, cmd) }).WithContext(ctx).
			WithTimeout(2*time.Minute).WithPolling(20*time.Millisecond).Should(Equal(want), "%s: %s", who, cmd)
	}
	added := benchMaxVCPUs - benchBootVCPUs
	t0 := time.Now()
	g.addCPUs(ctx, benchBootVCPUs, benchMaxVCPUs)
	waitGuest("cat /sys/devices/system/cpu/present", all)
	emitDuration(fmt.Sprintf("CPU hot add (%d): request to present", added), who, time.Since(t0))
	g.sh(ctx, fmt.Sprintf("echo 1 | tee /sys/devices/system/cpu/cpu[%d-%d]/online >/dev/null", benchBootVCPUs, benchMaxVCPUs-1))
	waitGuest("cat /sys/devices/system/cpu/online", all)
	emitDuration(fmt.Sprintf("CPU hot add (%d): request to online", added), who, time.Since(t0))

	t0 = time.Now()
	g.removeCPUs(ctx, benchBootVCPUs, benchMaxVCPUs)
	waitGuest("cat /sys/devices/system/cpu/present", boot)
	emitDuration(fmt.Sprintf("CPU hot remove (%d): request to gone", added), who, time.Since(t0))

	// Hot-added RAM is backed lazily: RSS grows by what the guest touches
	// (its memmap, about 1.6% of the added size), not by the size.
	rssBefore, _, err := rssSplit(g.pid())
	Expect(err).NotTo(HaveOccurred())
	emit("VMM RSS before memory hot add", "MiB", who, float64(rssBefore)/(1<<20))
	for _, size := range []int64{128 << 20, 2 << 30} {
		before := memTotal(ctx, g)
		var stats map[string]uint64
		if benchProfiling() {
			stats = kvmStats(g.pid())
		}
		var requested time.Duration
		var exits *exitTracer
		if benchProfiling() {
			exits = traceExits()
		}
		took := timeToGuest(ctx, g, memTotalAtLeast(before+uint64(size)*9/10), func() {
			t0 := time.Now()
			g.addRAM(ctx, size)
			requested = time.Since(t0)
		})
		emitDuration(fmt.Sprintf("memory hot add %s: request to MemTotal grown", config.FormatSize(uint64(size))), who, took)
		if benchProfiling() {
			exits.report(who, "memory hot add "+config.FormatSize(uint64(size)))
			profileStep(fmt.Sprintf("memory hot add %s (the request took %v)", config.FormatSize(uint64(size)), requested), who, g.pid(), stats)
		}
	}
	rssAfter, _, err := rssSplit(g.pid())
	Expect(err).NotTo(HaveOccurred())
	emit("VMM RSS after memory hot add (+128M +2G)", "MiB", who, float64(rssAfter)/(1<<20))
}

// memTotal is the guest's MemTotal in bytes.
func memTotal(ctx context.Context, g hotplugGuest) uint64 {
	GinkgoHelper()
	n, err := g.memTotal(ctx)
	Expect(err).NotTo(HaveOccurred(), "%s: MemTotal", g.name())
	return n
}

// rssSplit reads /proc/PID/smaps: the process's resident memory, and the
// part of it in mappings of at least benchGuestMapping (guest RAM, for vmm
// and QEMU alike).
func rssSplit(pid int) (total, guestMem uint64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	header := regexp.MustCompile(`^([0-9a-f]+)-([0-9a-f]+) `)
	var size uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := header.FindStringSubmatch(line); m != nil {
			lo, _ := strconv.ParseUint(m[1], 16, 64)
			hi, _ := strconv.ParseUint(m[2], 16, 64)
			size = hi - lo
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Rss:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("smaps %q: %w", line, err)
			}
			total += kb << 10
			if size >= benchGuestMapping {
				guestMem += kb << 10
			}
		}
	}
	return total, guestMem, sc.Err()
}

// vmmBench is the vmm under the hot plug benchmark; added counts the RAM
// it hot-added, so that a request needs no vm.info first.
type vmmBench struct {
	m     *guest.Machine
	added int64
	ping1 *pingClient
}

func startVmmBench(ctx context.Context) hotplugGuest {
	GinkgoHelper()
	cfg := config.Default()
	cfg.CPUs = config.CPUs{BootVCPUs: benchBootVCPUs, MaxVCPUs: benchMaxVCPUs}
	cfg.Memory.Size, cfg.Memory.HotplugSize = benchRAM, benchHotplug
	m, err := guest.Start(ctx, cfg, guest.Options{Name: "bench-vmm"})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { _ = m.Stop() }) // also when the run fails before stop
	Expect(m.WaitReady(ctx)).To(Succeed())
	return &vmmBench{m: m}
}

func (v *vmmBench) name() string { return bench.VMM }
func (v *vmmBench) pid() int     { return v.m.Pid() }
func (v *vmmBench) sh(ctx context.Context, cmd string) string {
	GinkgoHelper()
	return sh(ctx, v.m, cmd)
}
func (v *vmmBench) console() *guest.Console { return v.m.Console() }
func (v *vmmBench) run(ctx context.Context, cmd string) (string, int, error) {
	return v.m.Sh(ctx, cmd)
}
func (v *vmmBench) memTotal(ctx context.Context) (uint64, error) { return v.m.MemTotal(ctx) }
func (v *vmmBench) resizeVCPUs(ctx context.Context, n int) {
	GinkgoHelper()
	k := int64(n)
	Expect(v.m.Resize(ctx, vm.ResizeRequest{DesiredVCPUs: &k})).To(Succeed())
}
func (v *vmmBench) addCPUs(ctx context.Context, _, to int)      { v.resizeVCPUs(ctx, to) }
func (v *vmmBench) removeCPUs(ctx context.Context, from, _ int) { v.resizeVCPUs(ctx, from) }
func (v *vmmBench) addRAM(ctx context.Context, bytes int64) {
	GinkgoHelper()
	want := int64(v.m.Config().Memory.Size) + v.added + bytes
	Expect(v.m.Resize(ctx, vm.ResizeRequest{DesiredRAM: &want})).To(Succeed())
	v.added += bytes
}
func (v *vmmBench) ping(context.Context) {
	GinkgoHelper()
	if v.ping1 == nil {
		var err error
		v.ping1, err = dialPing(v.m.SocketPath())
		Expect(err).NotTo(HaveOccurred())
	}
	Expect(v.ping1.do()).To(Succeed())
}
func (v *vmmBench) stop() {
	if v.ping1 != nil {
		v.ping1.conn.Close()
	}
	if err := v.m.Stop(); err != nil {
		GinkgoWriter.Printf("stop bench vmm: %v\n", err)
	}
}

// qemuGuest is a QEMU process booting the project's kernel and initramfs
// with its serial console on stdio, driven through that console's shell:
// the benchmarks' QEMU side.
type qemuGuest struct {
	cmd   *exec.Cmd
	con   *guest.Console
	shell *guest.Shell
}

// startQEMU runs qemu with args and the project's kernel, initramfs and
// command line on a serial console, and waits for the guest's ready
// marker; a guest that never gets ready fails the spec, its QEMU killed.
func startQEMU(ctx context.Context, qemu string, args ...string) *qemuGuest {
	GinkgoHelper()
	p := guest.ResolvePaths()
	cmd := exec.Command(qemu, append(args,
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
		// Thread names ("CPU 0/KVM") for the profile's switch counts.
		"-name", "qemu,debug-threads=on",
		"-kernel", p.Kernel, "-initrd", p.Initramfs, "-append", guest.DefaultCmdline)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	console := guest.NewConsole(nil)
	cmd.Stdout, cmd.Stderr = console, GinkgoWriter
	stdin, err := cmd.StdinPipe()
	Expect(err).NotTo(HaveOccurred())
	Expect(cmd.Start()).To(Succeed())
	q := &qemuGuest{cmd: cmd, con: console, shell: guest.NewShell(stdin, console)}
	wctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	if _, _, err = console.WaitFor(wctx, 0, regexp.MustCompile(regexp.QuoteMeta(guest.ReadyMarker))); err != nil {
		q.kill()
		Fail(fmt.Sprintf("QEMU's guest never got ready: %v; console:\n%s", err, console.Tail(30)))
	}
	return q
}

func (q *qemuGuest) name() string { return bench.QEMU }
func (q *qemuGuest) pid() int     { return q.cmd.Process.Pid }
func (q *qemuGuest) console() *guest.Console {
	return q.con
}
func (q *qemuGuest) run(ctx context.Context, cmd string) (string, int, error) {
	return q.shell.Run(ctx, cmd)
}
func (q *qemuGuest) sh(ctx context.Context, cmd string) string {
	GinkgoHelper()
	c, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	out, status, err := q.shell.Run(c, cmd)
	Expect(err).NotTo(HaveOccurred(), "QEMU guest command %q", cmd)
	Expect(status).To(Equal(0), "QEMU guest command %q: %s", cmd, out)
	return out
}

// kill ends QEMU's process group and reaps it; later calls do nothing.
func (q *qemuGuest) kill() {
	if q.cmd.ProcessState == nil {
		_ = syscall.Kill(-q.cmd.Process.Pid, syscall.SIGKILL)
		_ = q.cmd.Wait()
	}
}

// qemuBench is QEMU q35 under the hot plug benchmark, driven through QMP
// and its serial console.
type qemuBench struct {
	*qemuGuest
	qmp    *qmpClient
	nextID int
	dir    string
}

func startQEMUBench(ctx context.Context, qemu string) hotplugGuest {
	GinkgoHelper()
	return startQEMUWithQMP(ctx, qemu,
		"-smp", fmt.Sprintf("%d,maxcpus=%d,sockets=1,cores=%d,threads=1", benchBootVCPUs, benchMaxVCPUs, benchMaxVCPUs),
		"-m", fmt.Sprintf("%dM,slots=4,maxmem=%dM", benchRAM>>20, (benchRAM+benchHotplug)>>20))
}

// startQEMUWithQMP starts QEMU q35 with args and a QMP socket, and dials
// it.
func startQEMUWithQMP(ctx context.Context, qemu string, args ...string) *qemuBench {
	GinkgoHelper()
	dir, err := os.MkdirTemp("", "vmm-bench-qemu-")
	Expect(err).NotTo(HaveOccurred())
	sock := filepath.Join(dir, "qmp.sock")
	q := &qemuBench{dir: dir}
	DeferCleanup(q.stop)
	q.qemuGuest = startQEMU(ctx, qemu, append(append([]string{"-accel", "kvm", "-M", "q35", "-cpu", "host"}, args...),
		"-qmp", "unix:"+sock+",server=on,wait=off")...)
	q.qmp, err = dialQMP(sock)
	Expect(err).NotTo(HaveOccurred())
	return q
}

func (q *qemuBench) memTotal(ctx context.Context) (uint64, error) {
	c, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	return guest.ReadMemTotal(c, q.shell)
}
func (q *qemuBench) addCPUs(_ context.Context, from, to int) {
	GinkgoHelper()
	for c := from; c < to; c++ {
		Expect(q.qmp.do("device_add", map[string]any{"driver": "host-x86_64-cpu", "id": fmt.Sprintf("cpu%d", c),
			"socket-id": 0, "core-id": c, "thread-id": 0})).To(Succeed())
	}
}
func (q *qemuBench) removeCPUs(_ context.Context, from, to int) {
	GinkgoHelper()
	for c := from; c < to; c++ {
		Expect(q.qmp.do("device_del", map[string]any{"id": fmt.Sprintf("cpu%d", c)})).To(Succeed())
	}
}
func (q *qemuBench) addRAM(_ context.Context, bytes int64) {
	GinkgoHelper()
	q.nextID++
	mem, dimm := fmt.Sprintf("mem%d", q.nextID), fmt.Sprintf("dimm%d", q.nextID)
	Expect(q.qmp.do("object-add", map[string]any{"qom-type": "memory-backend-ram", "id": mem, "size": bytes})).To(Succeed())
	Expect(q.qmp.do("device_add", map[string]any{"driver": "pc-dimm", "id": dimm, "memdev": mem})).To(Succeed())
}
func (q *qemuBench) ping(context.Context) {
	GinkgoHelper()
	Expect(q.qmp.do("query-status", nil)).To(Succeed())
}
func (q *qemuBench) stop() {
	if q.qmp != nil {
		q.qmp.conn.Close()
	}
	if q.qemuGuest != nil {
		q.kill()
	}
	os.RemoveAll(q.dir)
}

// qmpClient is a minimal QEMU Machine Protocol client: one command at a
// time, events skipped.
type qmpClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialQMP(sock string) (*qmpClient, error) {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("QMP: %w", err)
	}
	q := &qmpClient{conn: conn, r: bufio.NewReader(conn)}
	if _, err := q.r.ReadBytes('\n'); err != nil { // the greeting
		conn.Close()
		return nil, fmt.Errorf("QMP greeting: %w", err)
	}
	if err := q.do("qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

// do runs one command and returns its error reply as an error.
func (q *qmpClient) do(cmd string, args map[string]any) error {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_ = q.conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("QMP %s: %w", cmd, err)
	}
	for {
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("QMP %s: %w", cmd, err)
		}
		var reply struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &reply); err != nil {
			return fmt.Errorf("QMP %s: %q: %w", cmd, line, err)
		}
		switch {
		case reply.Error != nil:
			return errors.New("QMP " + cmd + ": " + reply.Error.Class + ": " + reply.Error.Desc)
		case reply.Return != nil:
			return nil
		}
		// An event: read on.
	}
}

// pingClient sends vmm.ping on one kept connection, one request at a time,
// and reads and decodes each reply, as qmpClient does query-status: the
// round trip is the server's, not an HTTP client's connection pool and
// goroutines.
type pingClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialPing(sock string) (*pingClient, error) {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("API socket: %w", err)
	}
	return &pingClient{conn: conn, r: bufio.NewReader(conn)}, nil
}

// pingRequest is GET vmm.ping as HTTP/1.1 on a kept connection.
const pingRequest = "GET " + api.Prefix + api.RoutePing + " HTTP/1.1\r\nHost: localhost\r\n\r\n"

func (p *pingClient) do() error {
	_ = p.conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(p.conn, pingRequest); err != nil {
		return fmt.Errorf("vmm.ping: %w", err)
	}
	resp, err := http.ReadResponse(p.r, nil)
	if err != nil {
		return fmt.Errorf("vmm.ping: %w", err)
	}
	defer resp.Body.Close()
	var reply api.PingResponse
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("vmm.ping: status %d: %v", resp.StatusCode, err)
	}
	return nil
}

// profilePings prints the slowest round trips of a run in the order they
// were sent, each with its place in the run and the time since the first.
func profilePings(who string, pings []time.Duration) {
	idx := make([]int, len(pings))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return pings[idx[a]] > pings[idx[b]] })
	slow := idx[:min(len(idx), 12)]
	sort.Ints(slow)
	var at time.Duration
	next := 0
	var b strings.Builder
	for i, d := range pings {
		if next < len(slow) && slow[next] == i {
			fmt.Fprintf(&b, " #%d@%v=%v", i, at.Round(time.Millisecond), d.Round(10*time.Microsecond))
			next++
		}
		at += d
	}
	GinkgoWriter.Printf("profile %s: slowest API round trips:%s\n", who, b.String())
}
