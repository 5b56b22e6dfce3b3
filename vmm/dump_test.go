package vmm

import (
	"os"
	"regexp"
	"testing"

	"golang.org/x/sys/unix"

	"vmm/kvm"
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
