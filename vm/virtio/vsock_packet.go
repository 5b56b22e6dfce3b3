package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// virtio-vsock (virtio 1.2, 5.10 "Socket Device"): stream sockets only.
const (
	// vsockDeviceID is the virtio device ID of a socket device.
	vsockDeviceID = 19
	// vsockHdrSize is struct virtio_vsock_hdr: src_cid u64, dst_cid u64,
	// src_port u32, dst_port u32, len u32, type u16, op u16, flags u32,
	// buf_alloc u32, fwd_cnt u32.
	vsockHdrSize = 44
	// VsockHostCID is the host's CID: a guest connection to it reaches a
	// program on the host.
	VsockHostCID = 2
	// vsockTypeStream is the only socket type the device serves.
	vsockTypeStream = 1
	// vsockMaxPayload bounds one packet's payload in either direction:
	// Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE.
	vsockMaxPayload = 64 << 10
	// Queue indexes: rx (device to driver), tx, event.
	vsockRXQueue    = 0
	vsockTXQueue    = 1
	vsockEventQueue = 2
	// vsockConfigSize is the configuration space: le64 guest_cid.
	vsockConfigSize = 8
)

// vsockOp is a packet's operation.
type vsockOp uint16

// Operations (5.10.6 "Device Operation").
const (
	vsockOpInvalid       vsockOp = 0
	vsockOpRequest       vsockOp = 1
	vsockOpResponse      vsockOp = 2
	vsockOpRst           vsockOp = 3
	vsockOpShutdown      vsockOp = 4
	vsockOpRW            vsockOp = 5
	vsockOpCreditUpdate  vsockOp = 6
	vsockOpCreditRequest vsockOp = 7
)

// String names the operation for logs.
func (o vsockOp) String() string {
	names := [...]string{"INVALID", "REQUEST", "RESPONSE", "RST", "SHUTDOWN", "RW", "CREDIT_UPDATE", "CREDIT_REQUEST"}
	if int(o) < len(names) {
		return names[o]
	}
	return "op" + strconv.Itoa(int(o))
}

// Shutdown flags of VIRTIO_VSOCK_OP_SHUTDOWN: the sender will receive
// (RCV) or send (SEND) no more.
const (
	vsockShutdownRcv  = 1
	vsockShutdownSend = 2
	vsockShutdownBoth = vsockShutdownRcv | vsockShutdownSend
)

// vsockHdr is a packet's header.
type vsockHdr struct {
	srcCID, dstCID   uint64
	srcPort, dstPort uint32
	len              uint32
	typ              uint16
	op               vsockOp
	flags            uint32
	bufAlloc, fwdCnt uint32
}

// encode writes h into b (at least vsockHdrSize bytes).
func (h *vsockHdr) encode(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], h.srcCID)
	binary.LittleEndian.PutUint64(b[8:], h.dstCID)
	binary.LittleEndian.PutUint32(b[16:], h.srcPort)
	binary.LittleEndian.PutUint32(b[20:], h.dstPort)
	binary.LittleEndian.PutUint32(b[24:], h.len)
	binary.LittleEndian.PutUint16(b[28:], h.typ)
	binary.LittleEndian.PutUint16(b[30:], uint16(h.op))
	binary.LittleEndian.PutUint32(b[32:], h.flags)
	binary.LittleEndian.PutUint32(b[36:], h.bufAlloc)
	binary.LittleEndian.PutUint32(b[40:], h.fwdCnt)
}

// decodeVsockHdr reads a header from b (at least vsockHdrSize bytes).
func decodeVsockHdr(b []byte) vsockHdr {
	return vsockHdr{
		srcCID:   binary.LittleEndian.Uint64(b[0:]),
		dstCID:   binary.LittleEndian.Uint64(b[8:]),
		srcPort:  binary.LittleEndian.Uint32(b[16:]),
		dstPort:  binary.LittleEndian.Uint32(b[20:]),
		len:      binary.LittleEndian.Uint32(b[24:]),
		typ:      binary.LittleEndian.Uint16(b[28:]),
		op:       vsockOp(binary.LittleEndian.Uint16(b[30:])),
		flags:    binary.LittleEndian.Uint32(b[32:]),
		bufAlloc: binary.LittleEndian.Uint32(b[36:]),
		fwdCnt:   binary.LittleEndian.Uint32(b[40:]),
	}
}

// errBadPacket marks a transmitted packet the device cannot use.
var errBadPacket = errors.New("bad vsock packet")

// parseVsockPacket reads the packet a transmit chain carries: the header
// and then hdr.len bytes of payload, both spread over the chain's
// readable buffers (Linux puts them in one or two descriptors). It
// returns the header and the payload's buffers, appended to payload[:0].
// Only RW packets may carry a payload, and at most vsockMaxPayload bytes.
func parseVsockPacket(readable [][]byte, rlen uint64, payload [][]byte) (vsockHdr, [][]byte, error) {
	var raw [vsockHdrSize]byte
	if gather(raw[:], readable, 0) < vsockHdrSize {
		return vsockHdr{}, payload[:0], fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", errBadPacket, rlen, vsockHdrSize)
	}
	h := decodeVsockHdr(raw[:])
	switch {
	case h.len > vsockMaxPayload:
		return h, payload[:0], fmt.Errorf("%w: %s with a %d-byte payload, above %d", errBadPacket, h.op, h.len, vsockMaxPayload)
	case uint64(h.len) > rlen-vsockHdrSize:
		return h, payload[:0], fmt.Errorf("%w: %s says %d payload bytes, the buffers hold %d", errBadPacket, h.op, h.len, rlen-vsockHdrSize)
	case h.len != 0 && h.op != vsockOpRW:
		return h, payload[:0], fmt.Errorf("%w: %s with a %d-byte payload", errBadPacket, h.op, h.len)
	}
	return h, subrange(payload[:0], readable, vsockHdrSize, uint64(h.len)), nil
}

// Hybrid vsock's handshake (Cloud Hypervisor's and Firecracker's): a host
// program connects to the device's unix socket and writes
// "CONNECT <port>\n"; once the guest accepts, the device answers
// "OK <host port>\n" and the stream is the connection.
const (
	vsockConnectPrefix = "CONNECT"
	// vsockMaxConnectLine bounds the handshake line, newline included.
	vsockMaxConnectLine = 64
)

// parseConnectLine reads a handshake line without its newline: "CONNECT"
// and a decimal port, separated by spaces.
func parseConnectLine(line string) (uint32, error) {
	line = strings.TrimSuffix(line, "\r")
	rest, ok := strings.CutPrefix(line, vsockConnectPrefix+" ")
	if !ok {
		return 0, fmt.Errorf("%q: want \"CONNECT <port>\"", line)
	}
	rest = strings.TrimLeft(rest, " ")
	port, err := strconv.ParseUint(rest, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q: port %q is not a number up to %d", line, rest, uint32(1<<32-1))
	}
	return uint32(port), nil
}

// connectOK is the handshake's answer for a connection that got hostPort.
func connectOK(hostPort uint32) string {
	return "OK " + strconv.FormatUint(uint64(hostPort), 10) + "\n"
}
