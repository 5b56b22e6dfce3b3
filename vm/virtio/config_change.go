package virtio

import "sync"

// Configuration changes the host makes (virtio 1.2, 2.5.1 "Driver
// Requirements: Device Configuration Space" and 4.1.4.3, 4.2.2): the
// configuration generation moves on, so a driver reading a field wider
// than 32 bits sees that it changed under it and reads again, and the
// configuration change interrupt tells the driver to look.

// configNotifier is a device whose configuration space the host changes
// while the guest runs (virtio-mem's requested_size, virtio-balloon's
// num_pages). The transport gives it the function that tells the driver.
type configNotifier interface {
	// setConfigNotify is called once, when the transport is made.
	setConfigNotify(notify func())
}

// hostConfig is what a configNotifier device embeds: the lock under which
// it keeps its state, among it the fields the host sets, and the function
// the transport gave it.
type hostConfig struct {
	mu     sync.Mutex
	notify func()
}

// setConfigNotify implements configNotifier.
func (h *hostConfig) setConfigNotify(f func()) {
	h.mu.Lock()
	h.notify = f
	h.mu.Unlock()
}

// setHostField sets *field, a configuration field h.mu guards, to v and,
// when that changes it and a transport listens, tells the driver. It
// reports whether it did. The caller holds no lock.
func setHostField[T comparable](h *hostConfig, field *T, v T) bool {
	h.mu.Lock()
	changed := *field != v
	*field = v
	notify := h.notify
	h.mu.Unlock()
	if !changed || notify == nil {
		return false
	}
	notify()
	return true
}

// configChange tells the driver that the device's configuration changed:
// the generation moves on and, once the driver has set DRIVER_OK, the
// configuration change interrupt is raised. It takes the transport's lock:
// a device calls it without holding its own.
func (t *transport) configChange() {
	t.configGen.Add(1)
	t.mu.Lock()
	live := t.active && !t.closed
	t.mu.Unlock()
	if live {
		t.isr.Or(interruptConfigChange)
		t.raise.configChanged()
	}
}

// generation is the configuration generation the registers show.
func (t *transport) generation() uint32 { return t.configGen.Load() }
