package lua

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestReadProcessCountsCountsThisProcesssThreadsFilesAndSockets(t *testing.T) {
	// Start the runtime's network poller first: its own descriptors would
	// count as files.
	warm, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	warm.Close()
	before, err := readProcessCounts(procRoot, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	after, err := readProcessCounts(procRoot, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.threads < 1 || after.vcpuThreads != 0 {
		t.Errorf("threads %d, vcpu threads %d", after.threads, after.vcpuThreads)
	}
	if after.rss == 0 {
		t.Error("RSS 0")
	}
	if after.files != before.files+1 || after.sockets != before.sockets+1 {
		t.Errorf("files %d -> %d, sockets %d -> %d; want one more of each", before.files, after.files, before.sockets, after.sockets)
	}
}

func TestReadProcessCountsOfAMissingProcessFails(t *testing.T) {
	if _, err := readProcessCounts(t.TempDir(), 1); err == nil {
		t.Error("no error for a process that is not there")
	}
}

func TestReadRSS(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		status string
		want   uint64
		ok     bool
	}{
		{"Name:\tvmm\nVmRSS:\t   2048 kB\nThreads:\t3\n", 2 << 20, true},
		{"Name:\tvmm\n", 0, false},
		{"VmRSS:\t2048\n", 0, false},
	} {
		path := filepath.Join(dir, "status")
		if err := os.WriteFile(path, []byte(c.status), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readRSS(path)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: %d, %v; want %d, ok %v", c.status, got, err, c.want, c.ok)
		}
	}
}

func TestParseThreadStatus(t *testing.T) {
	for _, c := range []struct {
		name, status string
		want         threadStatus
		ok           bool
	}{
		{"filtered", "Name:\tvcpu0\nState:\tS (sleeping)\nSeccomp:\t2\nSeccomp_filters:\t1\n",
			threadStatus{tid: 7, name: "vcpu0", seccomp: 2, seccompFilters: 1}, true},
		{"unconfined", "Name:\tvmm\nSeccomp:\t0\nSeccomp_filters:\t0\n",
			threadStatus{tid: 7, name: "vmm", seccomp: 0, seccompFilters: 0}, true},
		{"a kernel without seccomp", "Name:\tvmm\nThreads:\t3\n",
			threadStatus{tid: 7, name: "vmm", seccomp: -1, seccompFilters: -1}, true},
		{"a name with blanks and colons", "Name:\tvirtio: blk\nSeccomp:\t2\n",
			threadStatus{tid: 7, name: "virtio: blk", seccomp: 2, seccompFilters: -1}, true},
		{"not a number", "Name:\tvmm\nSeccomp:\tfilter\n", threadStatus{}, false},
	} {
		got, err := parseThreadStatus(7, c.status)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("%s: %+v, %v; want %+v, ok %v", c.name, got, err, c.want, c.ok)
		}
	}
}

func TestReadThreadsReadsEachTaskInTheOrderOfTheirIds(t *testing.T) {
	root := t.TempDir()
	for tid, status := range map[string]string{
		"100": "Name:\tvcpu1\nSeccomp:\t2\nSeccomp_filters:\t1\n",
		"99":  "Name:\tvmm\nSeccomp:\t2\nSeccomp_filters:\t1\n",
		"101": "", // the thread ended: no status file
	} {
		dir := filepath.Join(root, "99", "task", tid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if status == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readThreads(root, 99)
	if err != nil {
		t.Fatal(err)
	}
	want := []threadStatus{{99, "vmm", 2, 1}, {100, "vcpu1", 2, 1}}
	if !slices.Equal(got, want) {
		t.Errorf("threads %+v, want %+v", got, want)
	}
	if _, err := readThreads(root, 1); err == nil {
		t.Error("no error for a process that is not there")
	}
}

func TestReadThreadsReadsThisProcesssThreads(t *testing.T) {
	got, err := readThreads(procRoot, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	main := slices.IndexFunc(got, func(ts threadStatus) bool { return ts.tid == os.Getpid() })
	if main < 0 || got[main].name == "" {
		t.Errorf("threads %+v: want the main thread among them, named", got)
	}
	if !slices.IsSortedFunc(got, func(a, b threadStatus) int { return a.tid - b.tid }) {
		t.Errorf("threads %+v: want them in the order of their ids", got)
	}
}
