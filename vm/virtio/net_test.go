package virtio

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netFeatures is what a Linux virtio_net driver accepts from this device.
const netFeatures = featureVersion1 | featureIndirectDesc | netFMAC

func TestParseMAC(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{"52:54:00:12:34:56", "52:54:00:12:34:56", ""},
		{"02-00-00-AA-bb-01", "02:00:00:aa:bb:01", ""},
		{"01:00:5e:00:00:01", "", "multicast"},
		{"00:00:00:00:00:00", "", "zero"},
		{"52:54:00:12:34", "", "not a MAC"},
		{"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", "", "not a MAC"},
		{"nonsense", "", "not a MAC"},
	} {
		mac, err := parseMAC(c.in)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseMAC(%q) error %v, want %q", c.in, err, c.err)
			}
		case err != nil || mac.String() != c.want:
			t.Errorf("parseMAC(%q) = %v, %v; want %s", c.in, mac, err, c.want)
		}
	}
	a, err := parseMAC("")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := parseMAC("")
	if !bytes.Equal(a[:3], []byte{0x52, 0x54, 0x00}) || a[0]&1 != 0 || a[0]&2 == 0 {
		t.Errorf("generated MAC %s: want a locally administered unicast 52:54:00:xx:xx:xx", a)
	}
	if bytes.Equal(a, b) {
		t.Errorf("two generated MACs are both %s", a)
	}
}

func TestParseHostAddr(t *testing.T) {
	for _, c := range []struct {
		ip, mask string
		err      string
	}{
		{"", "", ""},
		{"192.168.249.1", "255.255.255.0", ""},
		{"10.0.0.1", "255.255.0.0", ""},
		{"192.168.249.1", "", "go together"},
		{"", "255.255.255.0", "go together"},
		{"fe80::1", "255.255.255.0", "not an IPv4"},
		{"300.1.1.1", "255.255.255.0", "not an IPv4"},
		{"10.0.0.1", "24", "dotted"},
		{"10.0.0.1", "255.0.255.0", "not a netmask"},
		{"10.0.0.1", "0.0.0.0", "not a netmask"},
	} {
		_, _, err := parseHostAddr(c.ip, c.mask)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("parseHostAddr(%q, %q) = %v, want %q", c.ip, c.mask, err, c.err)
		}
	}
}

// netns runs functions on one OS thread in a new network namespace, so
// that taps and addresses made by a test never touch the host's network.
type netns struct {
	calls chan func()
}

// newNetns starts the namespace's thread; it ends with the test. It skips
// the test where network namespaces cannot be made (not root).
func newNetns(t *testing.T, setup func() error) *netns {
	t.Helper()
	ns := &netns{calls: make(chan func())}
	errc := make(chan error)
	go func() {
		// Never unlocked: the thread, in its own namespace, exits with
		// the goroutine instead of returning to the scheduler.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		if setup != nil {
			if err := setup(); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
		for f := range ns.calls {
			f()
		}
	}()
	if err := <-errc; err != nil {
		t.Skipf("cannot make a network namespace: %v", err)
	}
	t.Cleanup(func() { close(ns.calls) })
	return ns
}

// do runs f on the namespace's thread.
func (ns *netns) do(f func()) {
	done := make(chan struct{})
	ns.calls <- func() { f(); close(done) }
	<-done
}

func TestNewNetWithoutNetAdminSaysSo(t *testing.T) {
	ns := newNetns(t, func() error {
		// Drop CAP_NET_ADMIN from this thread's effective set only.
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return err
		}
		data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		return unix.Capset(&hdr, &data[0])
	})
	var err error
	ns.do(func() {
		var n *Net
		if n, err = NewNet(NetConfig{Tap: "vmmtest9"}); err == nil {
			n.Close()
		}
	})
	if err == nil || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Fatalf("NewNet without CAP_NET_ADMIN: %v", err)
	}
	t.Log(err)
}

func TestNewNetRejectsBadConfig(t *testing.T) {
	for _, cfg := range []NetConfig{
		{MAC: "bogus"},
		{IP: "10.0.0.1"},
		{Tap: "a-tap-name-that-is-too-long"},
	} {
		if n, err := NewNet(cfg); err == nil {
			n.Close()
			t.Errorf("NewNet(%+v): no error", cfg)
		}
	}
}

// Addresses of the tap test.
var (
	hostIP   = net.IPv4(10, 11, 12, 1).To4()
	guestIP  = net.IPv4(10, 11, 12, 2).To4()
	guestMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
)

// arpRequest is a broadcast frame from the guest asking for hostIP.
func arpRequest() []byte {
	f := append(bytes.Repeat([]byte{0xff}, 6), guestMAC...)
	f = append(f, 0x08, 0x06)                    // ARP
	f = append(f, 0, 1, 0x08, 0x00, 6, 4, 0, 1)  // Ethernet/IPv4, request
	f = append(f, guestMAC...)                   // sender MAC
	f = append(f, guestIP...)                    // sender IP
	f = append(f, make([]byte, 6)...)            // target MAC
	f = append(f, hostIP...)                     // target IP
	return append(f, make([]byte, 60-len(f))...) // pad to the minimum frame
}

// checksum is the Internet checksum.
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// echoRequest is an ICMP echo request from the guest to the host.
func echoRequest(dst net.HardwareAddr, payload []byte) []byte {
	icmp := append([]byte{8, 0, 0, 0, 0x12, 0x34, 0, 1}, payload...)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(icmp)))
	ip = append(append(ip, guestIP...), hostIP...)
	binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	f := append(append(append([]byte(nil), dst...), guestMAC...), 0x08, 0x00)
	return append(append(f, ip...), icmp...)
}

func TestNetTapTrafficInNetworkNamespaceWithFakeDriver(t *testing.T) {
	ns := newNetns(t, nil)
	var n *Net
	var err error
	var iface *net.Interface
	var addrs []net.Addr
	ns.do(func() {
		n, err = NewNet(NetConfig{Tap: "vmmtest0", MAC: guestMAC.String(), IP: hostIP.String(), Mask: "255.255.255.0"})
		if err != nil {
			return
		}
		if iface, err = net.InterfaceByName("vmmtest0"); err != nil {
			return
		}
		addrs, err = iface.Addrs()
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.TapName() != "vmmtest0" || n.MAC().String() != guestMAC.String() {
		t.Fatalf("tap %q mac %s", n.TapName(), n.MAC())
	}
	if iface.Flags&net.FlagUp == 0 {
		t.Errorf("tap is not up: %v", iface.Flags)
	}
	found := false
	for _, a := range addrs {
		found = found || a.String() == "10.11.12.1/24"
	}
	if !found {
		t.Errorf("tap addresses %v, want 10.11.12.1/24 among them", addrs)
	}

	d := newFakeDriver(t, n)
	d.start(netFeatures, 2, 16)
	if got := d.r32(regDeviceID); got != netDeviceID {
		t.Fatalf("device id %d", got)
	}
	if f := d.deviceFeatures(); f&netFMAC == 0 {
		t.Fatalf("features %#x lack VIRTIO_NET_F_MAC", f)
	}
	// Offloads both ways and mergeable receive buffers; this driver
	// takes none of the receive side, so the tap sends it plain frames.
	const want = netFCSUM | netFHostTSO4 | netFHostTSO6 | netFGuestCSUM | netFGuestTSO4 | netFGuestTSO6 | netFMrgRxbuf
	if f := d.deviceFeatures(); f&want != want {
		t.Fatalf("features %#x: want CSUM, HOST_TSO4/6, GUEST_CSUM, GUEST_TSO4/6 and MRG_RXBUF", f)
	}
	mac := make([]byte, 6)
	for i := range mac {
		d.dev.Read(regConfig+uint64(i), mac[i:i+1])
	}
	if !bytes.Equal(mac, guestMAC) {
		t.Fatalf("config MAC % x", mac)
	}

	// Receive buffers, as Linux posts them without mergeable buffers.
	const rxLen = netHdrSize + 1518
	post := func() { d.submit(netRXQueue, d.buf(rxLen, true)) }
	for range 8 {
		post()
	}
	send := func(frame []byte) {
		t.Helper()
		b := d.buf(uint32(netHdrSize+len(frame)), false)
		copy(d.data(b)[netHdrSize:], frame)
		d.submit(netTXQueue, b)
		if _, used := d.waitUsed(netTXQueue); used != 0 {
			t.Fatalf("transmit used len %d", used)
		}
	}
	// receive waits for a frame that match accepts, skipping others (the
	// host's IPv6 chatter).
	receive := func(what string, match func(frame []byte) bool) []byte {
		t.Helper()
		for range 32 {
			id, used := d.waitUsed(netRXQueue)
			q := d.queues[netRXQueue]
			desc := d.mem.bytes(t, q.desc+uint64(id)*descSize, descSize)
			buf := d.mem.bytes(t, binary.LittleEndian.Uint64(desc), uint64(used))
			post()
			if used < netHdrSize+14 {
				t.Fatalf("received %d bytes", used)
			}
			if nb := binary.LittleEndian.Uint16(buf[netHdrNumBuffers:]); nb != 1 {
				t.Fatalf("num_buffers %d, want 1", nb)
			}
			if frame := buf[netHdrSize:]; match(frame) {
				return append([]byte(nil), frame...)
			}
		}
		t.Fatalf("no %s received", what)
		return nil
	}

	send(arpRequest())
	reply := receive("ARP reply", func(f []byte) bool {
		return binary.BigEndian.Uint16(f[12:]) == 0x0806 && binary.BigEndian.Uint16(f[20:]) == 2
	})
	if !bytes.Equal(reply[0:6], guestMAC) || !bytes.Equal(reply[28:32], hostIP) || !bytes.Equal(reply[38:42], guestIP) {
		t.Fatalf("ARP reply % x", reply)
	}
	hostMAC := net.HardwareAddr(reply[22:28])

	payload := []byte("ping through the virtio-net device")
	send(echoRequest(hostMAC, payload))
	echo := receive("ICMP echo reply", func(f []byte) bool {
		return binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[23] == 1 && f[34] == 0
	})
	if !bytes.Equal(echo[26:30], hostIP) || !bytes.Equal(echo[42:], payload) {
		t.Fatalf("echo reply % x", echo)
	}

	// A reset with the receive goroutine waiting, then a restart.
	d.w32(regStatus, 0)
	d.start(netFeatures, 2, 16)
	for range 4 {
		post()
	}
	send(arpRequest())
	receive("ARP reply after a reset", func(f []byte) bool {
		return binary.BigEndian.Uint16(f[12:]) == 0x0806 && binary.BigEndian.Uint16(f[20:]) == 2
	})
	if n.Dropped() != 0 {
		t.Errorf("%d frames dropped", n.Dropped())
	}
}

func TestNetSpreadsAFrameOverMergeableBuffersWithFakeDriver(t *testing.T) {
	ns := newNetns(t, nil)
	var n *Net
	var err error
	ns.do(func() {
		n, err = NewNet(NetConfig{Tap: "vmmtest1", MAC: guestMAC.String(), IP: hostIP.String(), Mask: "255.255.255.0"})
	})
	if err != nil {
		t.Fatal(err)
	}
	d := newFakeDriver(t, n)
	d.start(netFeatures|netFMrgRxbuf|netFGuestCSUM|netFGuestTSO4|netFGuestTSO6, 2, 64)
	// Buffers far smaller than a frame: an ARP reply (12 bytes of header
	// and 42 or more of frame) takes at least three.
	const rxLen = 20
	for range 32 {
		d.submit(netRXQueue, d.buf(rxLen, true))
	}
	b := d.buf(uint32(netHdrSize+len(arpRequest())), false)
	copy(d.data(b)[netHdrSize:], arpRequest())
	d.submit(netTXQueue, b)
	d.waitUsed(netTXQueue)

	q := d.queues[netRXQueue]
	read := func() []byte {
		id, used := d.waitUsed(netRXQueue)
		desc := d.mem.bytes(t, q.desc+uint64(id)*descSize, descSize)
		return append([]byte(nil), d.mem.bytes(t, binary.LittleEndian.Uint64(desc), uint64(used))...)
	}
	for range 32 {
		first := read()
		if len(first) < netHdrSize {
			t.Fatalf("first buffer of %d bytes", len(first))
		}
		frame := first
		nb := int(binary.LittleEndian.Uint16(first[netHdrNumBuffers:]))
		for range nb - 1 {
			frame = append(frame, read()...)
		}
		frame = frame[netHdrSize:]
		if binary.BigEndian.Uint16(frame[12:]) != 0x0806 || binary.BigEndian.Uint16(frame[20:]) != 2 {
			continue // the host's IPv6 chatter
		}
		if want := (netHdrSize + len(frame) + rxLen - 1) / rxLen; nb != want {
			t.Errorf("num_buffers %d for %d bytes in %d-byte buffers, want %d", nb, netHdrSize+len(frame), rxLen, want)
		}
		if !bytes.Equal(frame[0:6], guestMAC) || !bytes.Equal(frame[28:32], hostIP) {
			t.Fatalf("ARP reply % x", frame)
		}
		return
	}
	t.Fatal("no ARP reply")
}

func TestNetRefusesADescriptorThatIsNoTap(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if n, err := NewNet(NetConfig{FDs: []int{int(r.Fd())}}); err == nil {
		n.Close()
		t.Fatal("NewNet on a pipe: no error")
	} else if !strings.Contains(err.Error(), "not a tap") {
		t.Errorf("NewNet on a pipe: %v, want it to say not a tap", err)
	}
	if _, err := NewNet(NetConfig{FDs: []int{int(r.Fd()), int(w.Fd())}}); err == nil || !strings.Contains(err.Error(), "one tap descriptor") {
		t.Errorf("NewNet with two descriptors: %v, want a refusal naming one descriptor", err)
	}
	// The caller's descriptor stays open.
	if _, err := w.Write([]byte("x")); err != nil {
		t.Errorf("the pipe after NewNet: %v", err)
	}
}

func TestNetGathersTransmittedFramesOnlyInABulkFlow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	cases := []struct {
		name  string
		large bool // the last pass sent a large frame
		gap   time.Duration
		want  time.Duration
	}{
		{"acks or requests, notified often", false, 300 * time.Microsecond, 0},
		{"bulk under emulation: half the gap", true, 300 * time.Microsecond, 150 * time.Microsecond},
		{"bulk under emulation: at most netTXGather", true, 4 * time.Millisecond, netTXGather},
		{"bulk on a real host: a short window", true, 20 * time.Microsecond, 10 * time.Microsecond},
		{"a large frame after a pause: served at once", true, 10 * time.Millisecond, 0},
	}
	for _, c := range cases {
		n := &Net{txWoke: t0, txLarge: c.large}
		if got := n.gather(netTXQueue, t0.Add(c.gap)); got != c.want {
			t.Errorf("%s: gather(tx) = %v, want %v", c.name, got, c.want)
		}
		if !n.txWoke.Equal(t0.Add(c.gap)) {
			t.Errorf("%s: the notification's time was not kept", c.name)
		}
		n = &Net{txWoke: t0, txLarge: c.large}
		if got := n.gather(netRXQueue, t0.Add(c.gap)); got != 0 {
			t.Errorf("%s: gather(rx) = %v, want 0", c.name, got)
		}
	}
	if got := (&Net{txLarge: true}).gather(netTXQueue, t0); got != 0 {
		t.Errorf("the first notification: gather(tx) = %v, want 0", got)
	}
}
