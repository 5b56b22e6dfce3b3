package lua

import (
	"net"
	"os"
	"path/filepath"
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
