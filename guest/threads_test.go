package guest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseThreadStatus(t *testing.T) {
	for _, c := range []struct {
		name, status string
		want         Thread
		ok           bool
	}{
		{"filtered", "Name:\tvcpu0\nState:\tS (sleeping)\nSeccomp:\t2\nSeccomp_filters:\t1\n",
			Thread{TID: 7, Name: "vcpu0", Seccomp: 2, SeccompFilters: 1}, true},
		{"unconfined", "Name:\tvmm\nSeccomp:\t0\nSeccomp_filters:\t0\n",
			Thread{TID: 7, Name: "vmm", Seccomp: 0, SeccompFilters: 0}, true},
		{"a kernel without seccomp", "Name:\tvmm\nThreads:\t3\n",
			Thread{TID: 7, Name: "vmm", Seccomp: -1, SeccompFilters: -1}, true},
		{"a name with blanks and colons", "Name:\tvirtio: blk\nSeccomp:\t2\n",
			Thread{TID: 7, Name: "virtio: blk", Seccomp: 2, SeccompFilters: -1}, true},
		{"not a number", "Name:\tvmm\nSeccomp:\tfilter\n", Thread{}, false},
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
	want := []Thread{{99, "vmm", 2, 1}, {100, "vcpu1", 2, 1}}
	if !slices.Equal(got, want) {
		t.Errorf("threads %+v, want %+v", got, want)
	}
	if _, err := readThreads(root, 1); err == nil {
		t.Error("no error for a process that is not there")
	}
}

func TestReadThreadsReadsThisProcesssThreads(t *testing.T) {
	got, err := Threads(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	main := slices.IndexFunc(got, func(ts Thread) bool { return ts.TID == os.Getpid() })
	if main < 0 || got[main].Name == "" {
		t.Errorf("threads %+v: want the main thread among them, named", got)
	}
	if !slices.IsSortedFunc(got, func(a, b Thread) int { return a.TID - b.TID }) {
		t.Errorf("threads %+v: want them in the order of their ids", got)
	}
}
