package virtio

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
