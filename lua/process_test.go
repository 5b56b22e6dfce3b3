package lua

import (
	"net"
	"os"
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
	if after.files != before.files+1 || after.sockets != before.sockets+1 {
		t.Errorf("files %d -> %d, sockets %d -> %d; want one more of each", before.files, after.files, before.sockets, after.sockets)
	}
}

func TestReadProcessCountsOfAMissingProcessFails(t *testing.T) {
	if _, err := readProcessCounts(t.TempDir(), 1); err == nil {
		t.Error("no error for a process that is not there")
	}
}
