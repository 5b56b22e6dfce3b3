// Package events writes Cloud Hypervisor's event monitor stream
// (--event-monitor): one pretty-printed JSON object per event, each
// followed by an empty line,
//
//	{
//	  "timestamp": {
//	    "secs": 0,
//	    "nanos": 512000
//	  },
//	  "source": "vm",
//	  "event": "booted",
//	  "properties": null
//	}
//
// the timestamp being the time since the VMM started.
package events

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// Sources, as Cloud Hypervisor names them.
const (
	SourceVMM = "vmm"
	SourceVM  = "vm"
)

// Events vmm emits, Cloud Hypervisor's names.
const (
	Starting  = "starting"
	Shutdown  = "shutdown"
	Booting   = "booting"
	Booted    = "booted"
	Pausing   = "pausing"
	Paused    = "paused"
	Resuming  = "resuming"
	Resumed   = "resumed"
	Rebooting = "rebooting"
	Rebooted  = "rebooted"
	Resizing  = "resizing"
	Resized   = "resized"
	Deleted   = "deleted"
)

// Sink receives events; Monitor is one, nil none.
type Sink interface {
	Emit(source, event string, properties map[string]string)
}

// Monitor writes events to w. Safe for concurrent use.
type Monitor struct {
	start time.Time
	mu    sync.Mutex
	w     io.Writer
	err   error
}

// New returns a monitor writing to w, with timestamps counted from start.
func New(w io.Writer, start time.Time) *Monitor { return &Monitor{w: w, start: start} }

// timestamp is Rust's Duration as serde writes it.
type timestamp struct {
	Secs  uint64 `json:"secs"`
	Nanos uint32 `json:"nanos"`
}

// event is one event as Cloud Hypervisor writes it.
type event struct {
	Timestamp  timestamp         `json:"timestamp"`
	Source     string            `json:"source"`
	Event      string            `json:"event"`
	Properties map[string]string `json:"properties"`
}

// Emit writes one event. The first write error stops the monitor; Err
// reports it.
func (m *Monitor) Emit(source, name string, properties map[string]string) {
	d := time.Since(m.start)
	if d < 0 {
		d = 0
	}
	ev := event{Timestamp: timestamp{Secs: uint64(d / time.Second), Nanos: uint32(d % time.Second)},
		Source: source, Event: name, Properties: properties}
	b, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return
	}
	if _, err := m.w.Write(append(b, '\n', '\n')); err != nil {
		m.err = fmt.Errorf("event monitor: %w", err)
	}
}

// Err is the write error that stopped the monitor, or nil.
func (m *Monitor) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}
