package virtio

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// tunPath is the TUN/TAP clone device.
const tunPath = "/dev/net/tun"

// netAdminHint explains an EPERM from the tap ioctls.
const netAdminHint = "creating or configuring a tap needs CAP_NET_ADMIN: run vmm as root or give it the capability (setcap cap_net_admin+ep)"

// openTap opens the tap called name, creating it when it does not exist
// ("" lets the kernel pick tapN), in the calling thread's network
// namespace. The tap carries a 12-byte virtio-net header before each
// frame (IFF_VNET_HDR, TUNSETVNETHDRSZ: the virtio 1.x header) and no
// offloads, so every frame is whole and fully checksummed. It returns a
// nonblocking descriptor and the tap's name.
func openTap(name string) (int, string, error) {
	if len(name) >= unix.IFNAMSIZ {
		return -1, "", fmt.Errorf("tap name %q: longer than %d bytes", name, unix.IFNAMSIZ-1)
	}
	fd, err := unix.Open(tunPath, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
			return -1, "", fmt.Errorf("%s: %w (is the tun module loaded?)", tunPath, err)
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
			return -1, "", fmt.Errorf("%s: %w: %s", tunPath, err, netAdminHint)
		}
		return -1, "", fmt.Errorf("%s: %w", tunPath, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return -1, "", fmt.Errorf("tap name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		switch {
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
			return -1, "", fmt.Errorf("TUNSETIFF: %w: %s", err, netAdminHint)
		case errors.Is(err, unix.EBUSY):
			return -1, "", fmt.Errorf("TUNSETIFF: %w: another process (or device) has the tap open", err)
		case errors.Is(err, unix.EINVAL):
			return -1, "", fmt.Errorf("TUNSETIFF: %w: is %q a tun device or multi-queue tap?", err, name)
		}
		return -1, "", fmt.Errorf("TUNSETIFF: %w", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, netHdrSize); err != nil {
		return -1, "", fmt.Errorf("TUNSETVNETHDRSZ %d: %w", netHdrSize, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0); err != nil {
		return -1, "", fmt.Errorf("TUNSETOFFLOAD: %w", err)
	}
	ok = true
	return fd, ifr.Name(), nil
}

// adoptTap takes an open tap another process passed (--net fd=N, or
// vm.add-net's SCM_RIGHTS): it works on its own duplicate (close-on-exec,
// nonblocking), so fd stays the caller's. The tap must be a tap opened
// with IFF_NO_PI and IFF_VNET_HDR, as Cloud Hypervisor's callers (Kata
// Containers) open it; it gets the 12-byte header and no offloads, as
// openTap's. It returns the duplicate and the tap's name.
func adoptTap(fd int) (int, string, error) {
	if fd < 0 {
		return -1, "", fmt.Errorf("fd %d: not a descriptor", fd)
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("fd %d: %w", fd, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(dup)
		}
	}()
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return -1, "", err
	}
	if err := unix.IoctlIfreq(dup, unix.TUNGETIFF, ifr); err != nil {
		return -1, "", fmt.Errorf("fd %d: not a tap (TUNGETIFF: %w)", fd, err)
	}
	flags := ifr.Uint16()
	switch {
	case flags&unix.IFF_TAP == 0:
		return -1, "", fmt.Errorf("fd %d: %s is a tun device, not a tap", fd, ifr.Name())
	case flags&unix.IFF_VNET_HDR == 0 || flags&unix.IFF_NO_PI == 0:
		return -1, "", fmt.Errorf("fd %d: tap %s was opened without IFF_VNET_HDR or IFF_NO_PI: open it with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR", fd, ifr.Name())
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		return -1, "", fmt.Errorf("fd %d: %w", fd, err)
	}
	if err := unix.IoctlSetPointerInt(dup, unix.TUNSETVNETHDRSZ, netHdrSize); err != nil {
		return -1, "", fmt.Errorf("fd %d: TUNSETVNETHDRSZ %d: %w", fd, netHdrSize, err)
	}
	if err := unix.IoctlSetInt(dup, unix.TUNSETOFFLOAD, 0); err != nil {
		return -1, "", fmt.Errorf("fd %d: TUNSETOFFLOAD: %w", fd, err)
	}
	ok = true
	return dup, ifr.Name(), nil
}

// configureHost gives the host side of the tap name an IPv4 address and
// netmask (when ip is not nil) and brings it up.
func configureHost(name string, ip, mask net.IP) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	wrap := func(op string, err error) error {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return fmt.Errorf("%s: %w: %s", op, err, netAdminHint)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	if ip != nil {
		if err := ifr.SetInet4Addr(ip.To4()); err != nil {
			return fmt.Errorf("address %s: %w", ip, err)
		}
		if err := unix.IoctlIfreq(s, unix.SIOCSIFADDR, ifr); err != nil {
			return wrap(fmt.Sprintf("set address %s", ip), err)
		}
		if err := ifr.SetInet4Addr(mask.To4()); err != nil {
			return fmt.Errorf("netmask %s: %w", mask, err)
		}
		if err := unix.IoctlIfreq(s, unix.SIOCSIFNETMASK, ifr); err != nil {
			return wrap(fmt.Sprintf("set netmask %s", mask), err)
		}
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return wrap("get flags", err)
	}
	if flags := ifr.Uint16(); flags&unix.IFF_UP == 0 {
		ifr.SetUint16(flags | unix.IFF_UP | unix.IFF_RUNNING)
		if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
			return wrap("bring up", err)
		}
	}
	return nil
}
