package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmmdev/vmm/vm/eventfd"
)

// virtio-net (virtio 1.2, 5.1 "Network Device").
const (
	// netDeviceID is the virtio device ID of a network card.
	netDeviceID = 1
	// netFCSUM: the device takes frames with a partial checksum
	// (VIRTIO_NET_HDR_F_NEEDS_CSUM), which the tap completes.
	netFCSUM = 1 << 0
	// netFMAC: the device has a MAC address in its configuration space.
	netFMAC = 1 << 5
	// netFHostTSO4, netFHostTSO6 and netFHostECN: the device takes TCP
	// segmentation offload frames (up to 64 KiB, gso_type in the header),
	// which the tap (IFF_VNET_HDR) hands to the host's stack as they are.
	// A guest then sends about 40 times fewer frames, each one a queue
	// notification and an interrupt: the difference between a busy and an
	// idle vCPU under bulk sends.
	// netFGuestCSUM, netFGuestTSO4, netFGuestTSO6 and netFGuestECN: the
	// guest takes frames with a partial checksum and TCP segmentation
	// offload frames, which the tap (TUNSETOFFLOAD) then passes on from
	// the host's stack as they are, up to 64 KiB; netFMrgRxbuf: a frame
	// may span several receive buffers (num_buffers in its header), so
	// the guest posts small buffers and a 64 KiB frame takes what it
	// needs. A bulk receive then costs the guest one frame, one interrupt
	// and one stack traversal per 64 KiB instead of per 1.5 KiB.
	netFGuestCSUM = 1 << 1
	netFGuestTSO4 = 1 << 7
	netFGuestTSO6 = 1 << 8
	netFGuestECN  = 1 << 9
	netFMrgRxbuf  = 1 << 15
	netFHostTSO4  = 1 << 11
	netFHostTSO6  = 1 << 12
	netFHostECN   = 1 << 13
	// netHdrSize is struct virtio_net_hdr_v1: flags, gso_type, hdr_len,
	// gso_size, csum_start, csum_offset, num_buffers. With
	// VIRTIO_F_VERSION_1 it is always 12 bytes, on both queues.
	netHdrSize = 12
	// netHdrNumBuffers is num_buffers' offset in the header: how many
	// buffers the frame takes (1 without VIRTIO_NET_F_MRG_RXBUF).
	netHdrNumBuffers = 10
	// netMaxFrame bounds one frame, either way: a TSO frame is at most 64
	// KiB of IP packet plus the Ethernet header.
	netMaxFrame = 65536 + 18
	// Queue indexes: receiveq1 and transmitq1.
	netRXQueue = 0
	netTXQueue = 1
)

// NetConfig describes a virtio-net device and its tap, in the command
// line's terms (--net tap=NAME,mac=MAC,ip=IP,mask=MASK).
type NetConfig struct {
	// Tap is the tap's name; it is created when it does not exist. ""
	// lets the kernel pick one (tapN).
	Tap string
	// MAC is the guest's address (aa:bb:cc:dd:ee:ff); "" generates a
	// random locally administered one, 52:54:00:xx:xx:xx.
	MAC string
	// IP and Mask, both or neither, configure the host side of the tap
	// (an IPv4 address and a dotted netmask).
	IP, Mask string
	// FDs holds at most one open tap to use instead of opening Tap (the
	// device works on a duplicate; the descriptor stays the caller's).
	// Its host side is configured only when IP and Mask are given: the
	// caller that opened it owns it.
	FDs []int
}

// Net is a virtio-net device backed by a tap. Transmitted frames are
// written to the tap on the transmit queue's worker; a receive thread
// reads the tap into the receive queue's buffers while the driver runs,
// sleeping in ppoll(2) on the tap and its wake-up eventfd, as the queue
// workers sleep in read(2) on theirs: no Go poller between the tap and the
// thread, so a frame costs no hand-off from the poller's thread to it.
type Net struct {
	tapName string
	mac     net.HardwareAddr
	fd      int      // the tap, nonblocking
	file    *os.File // owns fd
	config  [6]byte
	dropped atomic.Uint64
	// wake is the receive thread's eventfd: the driver added receive
	// buffers, or deactivate asks it to end (stopping).
	wake     int
	stopping atomic.Bool
	done     chan struct{} // closed when the receive thread ends
	log      *slog.Logger  // the transport's, from activate
	// Only the transmit queue's worker touches these (gather, process):
	// when its last notification woke it, and whether the last pass that
	// found frames sent a large one.
	txWoke  time.Time
	txLarge bool
}

// The transmit queue's gathering (gatherer). A guest that sends in bulk
// notifies again soon after each pass, with full-size or segmentation
// offload frames; the worker then lets frames gather after a notification
// for half the time since the one before, at most netTXGather, so that a
// burst costs one pass and one interrupt rather than one per frame. A
// pass of small frames (acks, requests, pings) or a notification after a
// pause longer than netTXPause is served at once: no latency added where
// a flow is not bulk. Under emulation a notification costs the guest
// hundreds of microseconds and the window reaches netTXGather; a real
// host's bulk flow notifies microseconds apart, and its window is as short.
// The wait also sets the guest's frame size: its TCP holds data back while
// its last frames are not completed (autocorking, small queues), so the
// later the completion, the larger the next frame. Guest to host on PCI
// in the emulated KVM host, 3 runs each: 200 us at most, 2.2-2.5 MiB/s
// in 4800-6400 frames for 16 MiB; 500 us, 3.5-3.9 in 3800-4100; 1 ms,
// 3.9-5.2 in 2650-3300; 2 ms, 4.1-6.1 in 1900-2700. A paced flow of large
// frames waits at most 1 ms, and never more than half its own gap.
const (
	netTXGather = 1000 * time.Microsecond
	netTXPause  = 5 * time.Millisecond
	// netTXLarge is the frame size, header excluded, from which a frame
	// counts as bulk: an MSS-sized segment is; an ack or a request is not.
	netTXLarge = 1024
)

// gather implements gatherer.
func (n *Net) gather(i int, now time.Time) time.Duration {
	if i != netTXQueue {
		return 0
	}
	gap := now.Sub(n.txWoke)
	n.txWoke = now
	if !n.txLarge || gap <= 0 || gap > netTXPause {
		return 0
	}
	return min(gap/2, netTXGather)
}

// NewNet opens (or creates) the tap, configures its host side when IP and
// Mask are given, brings it up, and returns the device. It needs
// CAP_NET_ADMIN to create or configure a tap; its error says so.
func NewNet(cfg NetConfig) (*Net, error) {
	mac, err := parseMAC(cfg.MAC)
	if err != nil {
		return nil, fmt.Errorf("net: %w", err)
	}
	ip, mask, err := parseHostAddr(cfg.IP, cfg.Mask)
	if err != nil {
		return nil, fmt.Errorf("net: %w", err)
	}
	fd, name, err := openNetTap(cfg)
	if err != nil {
		return nil, err
	}
	file := os.NewFile(uintptr(fd), "tap "+name)
	if len(cfg.FDs) == 0 || ip != nil {
		if err := configureHost(name, ip, mask); err != nil {
			file.Close()
			return nil, fmt.Errorf("net: tap %s: %w", name, err)
		}
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("net: tap %s: the receive thread's eventfd: %w", name, err)
	}
	n := &Net{tapName: name, mac: mac, fd: fd, file: file, wake: wake}
	copy(n.config[:], mac)
	return n, nil
}

// openNetTap opens cfg's tap: the descriptor passed in FDs, or the tap
// called Tap.
func openNetTap(cfg NetConfig) (int, string, error) {
	switch len(cfg.FDs) {
	case 0:
		fd, name, err := openTap(cfg.Tap)
		if err != nil {
			return -1, "", fmt.Errorf("net: tap %q: %w", cfg.Tap, err)
		}
		return fd, name, nil
	case 1:
	default:
		return -1, "", fmt.Errorf("net: fds: %d tap descriptors: vmm gives a net one queue pair, so one tap descriptor", len(cfg.FDs))
	}
	fd, name, err := adoptTap(cfg.FDs[0])
	if err != nil {
		return -1, "", fmt.Errorf("net: fds: %w", err)
	}
	if cfg.Tap != "" && cfg.Tap != name {
		unix.Close(fd)
		return -1, "", fmt.Errorf("net: tap=%s, but the descriptor passed is tap %s", cfg.Tap, name)
	}
	return fd, name, nil
}

// parseMAC reads a unicast MAC address, or generates one for "".
func parseMAC(s string) (net.HardwareAddr, error) {
	if s == "" {
		// getrandom(2) itself: crypto/rand would link its DRBG into vmm
		// for three bytes.
		mac := net.HardwareAddr{0x52, 0x54, 0x00, 0, 0, 0}
		if _, err := unix.Getrandom(mac[3:], 0); err != nil {
			return nil, fmt.Errorf("generate a MAC address: %w", err)
		}
		return mac, nil
	}
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("mac=%s: not a MAC address like 52:54:00:12:34:56", s)
	}
	if mac[0]&1 != 0 {
		return nil, fmt.Errorf("mac=%s: a multicast address", s)
	}
	if string(mac) == "\x00\x00\x00\x00\x00\x00" {
		return nil, fmt.Errorf("mac=%s: the zero address", s)
	}
	return mac, nil
}

// parseHostAddr reads the host side's IPv4 address and netmask: both or
// neither.
func parseHostAddr(ipStr, maskStr string) (net.IP, net.IP, error) {
	if ipStr == "" && maskStr == "" {
		return nil, nil, nil
	}
	if ipStr == "" || maskStr == "" {
		return nil, nil, errors.New("ip= and mask= go together: give both or neither")
	}
	ip := net.ParseIP(ipStr).To4()
	if ip == nil {
		return nil, nil, fmt.Errorf("ip=%s: not an IPv4 address", ipStr)
	}
	mask := net.ParseIP(maskStr).To4()
	if mask == nil {
		return nil, nil, fmt.Errorf("mask=%s: not a dotted IPv4 netmask like 255.255.255.0", maskStr)
	}
	if ones, bits := net.IPMask(mask).Size(); bits == 0 || ones == 0 {
		return nil, nil, fmt.Errorf("mask=%s: not a netmask (contiguous leading ones)", maskStr)
	}
	return ip, mask, nil
}

// Kind implements Device.
func (n *Net) Kind() string { return "virtio-net" }

// TapName is the tap's name: the configured one, or the one the kernel
// picked.
func (n *Net) TapName() string { return n.tapName }

// MAC is the guest's MAC address: the configured one, or the generated
// one.
func (n *Net) MAC() net.HardwareAddr { return append(net.HardwareAddr(nil), n.mac...) }

// Dropped counts frames dropped: received frames too large for the
// guest's buffers, malformed or failed transmissions.
func (n *Net) Dropped() uint64 { return n.dropped.Load() }

// Close closes the tap; a tap this device created goes away with it.
func (n *Net) Close() error {
	unix.Close(n.wake)
	return closeFile(n.file, "net: tap "+n.tapName)
}

func (n *Net) deviceID() uint32 { return netDeviceID }
func (n *Net) features() uint64 {
	return netFMAC | netFCSUM | netFHostTSO4 | netFHostTSO6 | netFHostECN |
		netFGuestCSUM | netFGuestTSO4 | netFGuestTSO6 | netFGuestECN | netFMrgRxbuf
}

// tapOffloads is the TUNSETOFFLOAD flags for the receive offloads the
// driver accepted: the tap hands the device only frames the guest takes.
func tapOffloads(features uint64) int {
	if features&netFGuestCSUM == 0 {
		return 0
	}
	flags := unix.TUN_F_CSUM
	for _, f := range []struct {
		feature uint64
		flag    int
	}{{netFGuestTSO4, unix.TUN_F_TSO4}, {netFGuestTSO6, unix.TUN_F_TSO6}, {netFGuestECN, unix.TUN_F_TSO_ECN}} {
		if features&f.feature != 0 {
			flags |= f.flag
		}
	}
	return flags
}
func (n *Net) numQueues() int { return 2 }

func (n *Net) configSize() int { return len(n.config) }

func (n *Net) readConfig(offset uint64, data []byte) {
	if offset < uint64(len(n.config)) {
		copy(data, n.config[offset:])
	}
}

// writeConfig ignores writes: the MAC is read-only in virtio 1.x.
func (n *Net) writeConfig(uint64, []byte) {}

func (n *Net) activate(qs queues) {
	features := qs.negotiated()
	if err := unix.IoctlSetInt(n.fd, unix.TUNSETOFFLOAD, tapOffloads(features)); err != nil {
		// The tap then sends plain frames, which every driver takes.
		qs.logger().Warn("virtio-net: the tap refused the receive offloads", "tap", n.tapName, "err", err)
	}
	n.stopping.Store(false)
	n.done = make(chan struct{})
	n.log = qs.logger()
	mrg, done := features&netFMrgRxbuf != 0, n.done
	if err := qs.goWorker("rx", func() { n.receive(qs, mrg, done) }); err != nil {
		qs.logger().Error("virtio-net: no receive worker; the guest receives nothing", "tap", n.tapName, "err", err)
		close(done)
	}
}

func (n *Net) deactivate() {
	n.stopping.Store(true)
	if err := eventfd.Signal(n.wake); err != nil {
		n.log.Error("virtio-net: waking the receive thread to stop it", "tap", n.tapName, "err", err)
	}
	<-n.done
	// The next driver may take no offloads.
	_ = unix.IoctlSetInt(n.fd, unix.TUNSETOFFLOAD, 0)
}

// process handles a queue notification: new receive buffers wake the
// receive thread; transmit buffers go to the tap.
func (n *Net) process(i int, q *vring) {
	if i == netRXQueue {
		if err := eventfd.Signal(n.wake); err != nil {
			q.log.Error("virtio-net: waking the receive thread", "tap", n.tapName, "err", err)
		}
		return
	}
	var c chain
	large, frames := false, 0
	for q.next(&c) {
		frames++
		large = large || c.rlen >= netHdrSize+netTXLarge
		var err error
		if c.rlen < netHdrSize || c.rlen > netHdrSize+netMaxFrame {
			err = fmt.Errorf("%d bytes: outside %d..%d", c.rlen, netHdrSize, netHdrSize+netMaxFrame)
		} else {
			err = n.transmit(c.readable)
		}
		if err != nil {
			n.drop(q, "transmitted", err)
		}
		q.push(c.head, 0)
	}
	if frames > 0 {
		n.txLarge = large
	}
}

// maxLoggedDrops bounds the log lines dropped frames cause.
const maxLoggedDrops = 8

// drop counts a frame dropped in direction ("transmitted" or "received")
// and logs why, for the first maxLoggedDrops drops.
func (n *Net) drop(q *vring, direction string, why error) {
	if d := n.dropped.Add(1); d <= maxLoggedDrops {
		q.log.Warn("virtio-net: "+direction+" frame dropped", "tap", n.tapName, "err", why, "dropped", d)
	}
}

// transmit writes one header+frame, the chain's readable buffers, to the
// tap with one writev: no copy on the way. The tap never blocks a writer
// for long; a frame it refuses (EAGAIN, link down) is dropped, as a busy
// wire would: the error says why.
func (n *Net) transmit(bufs [][]byte) error {
	for {
		_, err := unix.Writev(n.fd, bufs)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("tap write of %d buffers: %w", len(bufs), err)
		}
		return nil
	}
}

// netRXBatch bounds the frames delivered under one lock of the receive
// queue, and so under one interrupt decision.
const netRXBatch = 64

// receive moves frames from the tap to the guest until deactivate sets
// stopping. A frame waits for receive buffers (the driver's notification
// wakes it); one too large for a buffer is dropped, unless mrg (mergeable
// buffers) lets it span several. Frames already queued in the tap go along
// with the one that woke it, up to netRXBatch, so that a burst costs the
// guest one interrupt rather than one per frame.
func (n *Net) receive(qs queues, mrg bool, done chan struct{}) {
	defer close(done)
	buf := make([]byte, netHdrSize+netMaxFrame)
	var chains []chain
	var frame []byte // read from the tap, not delivered yet
	for !n.stopping.Load() {
		if frame == nil {
			size, err := n.readTap(buf)
			if errors.Is(err, unix.EAGAIN) {
				err = n.sleep(true)
			}
			if err != nil {
				qs.logger().Error("virtio-net: tap read failed; receiving stopped", "tap", n.tapName, "err", err)
				return
			}
			if size >= netHdrSize {
				frame = buf[:size]
			}
			continue
		}
		starved := false
		live := qs.with(netRXQueue, func(q *vring) {
			for i := 1; ; i++ {
				delivered := false
				if mrg {
					delivered = n.deliverMerged(q, frame, &chains)
				} else {
					delivered = n.deliver(q, frame, &chains)
				}
				if !delivered {
					starved = true
					return
				}
				frame = nil
				if i == netRXBatch {
					return
				}
				size, err := n.readTap(buf)
				if err != nil || size < netHdrSize {
					return // none now (EAGAIN), or a runt; a failed tap fails the next read
				}
				frame = buf[:size]
			}
		})
		if frame == nil || (live && !starved) {
			continue
		}
		// The driver has posted no buffer for this frame: wait for its
		// notification, or for the end.
		if err := n.sleep(false); err != nil {
			qs.logger().Error("virtio-net: receiving stopped", "tap", n.tapName, "err", err)
			return
		}
	}
}

// sleep waits in ppoll(2) until the receive thread's eventfd is signalled
// (new receive buffers, or the end) or, with tap, until the tap has a
// frame; it consumes the eventfd's count. A tap that reports an error or
// a hang-up (deleted under vmm) is an error: its read would fail.
func (n *Net) sleep(tap bool) error {
	fds := []unix.PollFd{{Fd: int32(n.wake), Events: unix.POLLIN}, {Fd: int32(n.fd), Events: unix.POLLIN}}
	if !tap {
		fds = fds[:1]
	}
	for {
		_, err := unix.Ppoll(fds, nil, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ppoll: %w", err)
		}
		break
	}
	if fds[0].Revents&unix.POLLIN != 0 {
		if _, err := eventfd.Drain(n.wake); err != nil {
			return fmt.Errorf("the receive thread's eventfd: %w", err)
		}
	}
	if tap && fds[1].Revents&unix.POLLIN == 0 && fds[1].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
		return fmt.Errorf("tap: poll events %#x", fds[1].Revents)
	}
	return nil
}

// deliver puts frame in the next receive buffer and reports whether it was
// handled: false when the driver has posted none. A frame too large for
// the buffer is dropped, the buffer left for the next.
func (n *Net) deliver(q *vring, frame []byte, chains *[]chain) bool {
	if len(*chains) == 0 {
		*chains = append(*chains, chain{})
	}
	c := &(*chains)[0]
	if !q.next(c) {
		return false
	}
	if c.wlen < uint64(len(frame)) {
		q.unpop()
		n.drop(q, "received", fmt.Errorf("%d bytes for a %d-byte buffer", len(frame), c.wlen))
		return true
	}
	binary.LittleEndian.PutUint16(frame[netHdrNumBuffers:], 1)
	scatter(c.writable, frame)
	q.push(c.head, uint32(len(frame)))
	return true
}

// deliverMerged puts frame in as many receive buffers as it takes, their
// count in the header's num_buffers, and publishes them at once: the
// driver reads num_buffers in the first and expects the others to be
// there. It reports false, having taken nothing, when the driver has not
// posted enough buffers yet.
func (n *Net) deliverMerged(q *vring, frame []byte, chains *[]chain) bool {
	var room uint64
	k := 0
	for room < uint64(len(frame)) {
		if k == len(*chains) {
			*chains = append(*chains, chain{})
		}
		if !q.next(&(*chains)[k]) {
			for range k {
				q.unpop()
			}
			return false
		}
		room += (*chains)[k].wlen
		k++
	}
	binary.LittleEndian.PutUint16(frame[netHdrNumBuffers:], uint16(k))
	rest := frame
	for _, c := range (*chains)[:k] {
		w := scatter(c.writable, rest)
		q.stage(c.head, uint32(w))
		rest = rest[w:]
	}
	q.publish()
	return true
}

// readTap reads one header+frame if the tap has one now; EAGAIN when it
// has none.
func (n *Net) readTap(buf []byte) (int, error) {
	for {
		size, err := unix.Read(n.fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return size, err
	}
}
