package vm

import (
	"encoding/binary"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/kvm"
	"github.com/vmmdev/vmm/vm/memory"
)

func TestVectorsListsTheSetBitsOfALAPICBitmap(t *testing.T) {
	var l kvm.LAPICState
	l.SetReg32(lapicIRR, 1<<5)       // vector 0x05
	l.SetReg32(lapicIRR+16, 1<<4)    // vector 0x24
	l.SetReg32(lapicIRR+7*16, 1<<31) // vector 0xff
	l.SetReg32(lapicISR, 0)          // nothing in service
	if got, want := vectors(&l, lapicIRR), "[0x5,0x24,0xff]"; got != want {
		t.Errorf("IRR = %s, want %s", got, want)
	}
	if got := vectors(&l, lapicISR); got != "[]" {
		t.Errorf("ISR = %s, want []", got)
	}
}

func TestFormatIOAPICShowsOnlyUnmaskedPins(t *testing.T) {
	var io kvm.IOAPICState
	for i := range io.Redir {
		io.Redir[i] = 1 << 16 // masked
	}
	io.IRR = 1 << 4
	io.Redir[4] = 0x31                                // vector 0x31, fixed, edge
	io.Redir[9] = 1<<56 | 1<<15 | 1<<14 | 1<<8 | 0x41 // lowest priority, level, remote IRR, dest 1
	want := "irr=0x10 pin4:vec=0x31,edge,mode=0,dest=0x0,remote_irr=false pin9:vec=0x41,level,mode=1,dest=0x1,remote_irr=true"
	if got := formatIOAPIC(io); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestThreadStatReadsStateAndCPUTimeOfALiveThread(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc")
	}
	if got := threadStat(unix.Gettid()); !regexp.MustCompile(`^[A-Z]/utime=\d+/stime=\d+$`).MatchString(got) {
		t.Errorf("threadStat = %q", got)
	}
	if got := threadStat(-1); got != "?" {
		t.Errorf("threadStat(-1) = %q, want ?", got)
	}
}

func TestGuestCodeReadsTheBytesAtRIPThroughTheGuestsPageTables(t *testing.T) {
	mem, err := memory.Map([]memory.Range{{Start: 0, Size: 4 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	put := func(gpa, v uint64) {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		if err := mem.WriteAt(b[:], gpa); err != nil {
			t.Fatal(err)
		}
	}
	// PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000 mapping a 2 MiB page
	// at 0x20_0000 (entry bits: present 1, page size 0x80).
	const rip = 0xffff_ffff_8020_0010
	put(0x1000+(rip>>39&0x1ff)*8, 0x2000|1)
	put(0x2000+(rip>>30&0x1ff)*8, 0x3000|1)
	put(0x3000+(rip>>21&0x1ff)*8, 0x20_0000|0x80|1)
	if err := mem.WriteAt([]byte{0x0f, 0x0b}, 0x20_0010); err != nil {
		t.Fatal(err)
	}
	got, err := guestCode(mem, 0x1000, 0, rip)
	before, at, ok := strings.Cut(got, "|")
	if err != nil || !ok || len(before) != 2*dumpCodeBefore || at[:4] != "0f0b" || len(at) != 2*dumpCodeBytes {
		t.Errorf("guestCode = %q, %v; want 8 bytes, |, then 16 bytes starting 0f0b (ud2)", got, err)
	}
	// At the start of a page, nothing before.
	if got, err := guestCode(mem, 0x1000, 0, rip&^0xfff); err != nil || !strings.HasPrefix(got, "|") {
		t.Errorf("guestCode at a page start = %q, %v; want no bytes before", got, err)
	}
	if _, err := guestCode(mem, 0x1000, 0, 0x1000); err == nil || !strings.Contains(err.Error(), "not present") {
		t.Errorf("guestCode of an unmapped address: %v, want why", err)
	}
}

// TestDumpHoldsTheMachineAgainstCloseWithAnEmptyMachine: a machine held
// for the state dump is not torn down (by a reset, a reboot or a shutdown)
// until the dump releases it. The machine is an empty one (no KVM).
func TestDumpHoldsTheMachineAgainstCloseWithAnEmptyMachine(t *testing.T) {
	m := &machine{log: slog.New(slog.DiscardHandler)}
	v := &VMM{m: m}
	held, release := v.holdMachine()
	if held != m {
		t.Fatalf("held %p, want the running machine %p", held, m)
	}
	closed := make(chan struct{})
	go func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		m.close()
		v.m = nil
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("the machine was closed while the dump held it")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not go ahead once the dump released the machine")
	}
	if m, _ := v.holdMachine(); m != nil {
		t.Error("a closed machine was handed out")
	}
}
