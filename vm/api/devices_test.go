package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/config"
)

func TestAddDiskWithFakeBackendAnswersTheIDAndAddressOrNoContent(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	// ch-remote's v51 body: every field, nulls included.
	body := `{"path":"/img","readonly":false,"direct":false,"iommu":false,"num_queues":1,"queue_size":128,"vhost_user":false,"vhost_socket":null,"rate_limit_group":null,"rate_limiter_config":null,"id":null,"disable_io_uring":false,"disable_aio":false,"pci_segment":0,"serial":null,"queue_affinity":null,"backing_files":false,"sparse":true,"image_type":"Unknown"}`
	r := do(t, s.SocketPath(), "PUT", Prefix+RouteAddDisk, []byte(body))
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Errorf("add-disk before boot: %d %q, want 204 and no body", r.status, r.body)
	}
	fb.addReply = &vm.PCIDeviceInfo{ID: "_disk1", BDF: "0000:00:06.0"}
	r = do(t, s.SocketPath(), "PUT", Prefix+RouteAddDisk, []byte(`{"path":"/img2","id":"data"}`))
	if r.status != http.StatusOK || string(r.body) != `{"id":"_disk1","bdf":"0000:00:06.0"}` {
		t.Errorf("add-disk on a running VM: %d %s", r.status, r.body)
	}
	if len(fb.added) != 2 || fb.added[0].(config.Disk).Path != "/img" || fb.added[1].(config.Disk).ID != "data" {
		t.Errorf("backend got %+v", fb.added)
	}
	r = do(t, s.SocketPath(), "PUT", Prefix+RouteAddNet, []byte(`{"tap":"tap7","mac":"52:54:00:12:34:56"}`))
	if r.status != http.StatusOK {
		t.Errorf("add-net: %d %s", r.status, r.body)
	}
	if n, ok := fb.added[2].(config.Net); !ok || n.Tap != "tap7" {
		t.Errorf("add-net gave the backend %+v", fb.added[2])
	}
	r = do(t, s.SocketPath(), "PUT", Prefix+RouteAddVsock, []byte(`{"cid":3,"socket":"/tmp/v.sock"}`))
	if v, ok := fb.added[3].(config.Vsock); r.status != http.StatusOK || !ok || v.CID != 3 {
		t.Errorf("add-vsock: %d, backend got %+v", r.status, fb.added[3])
	}
	r = do(t, s.SocketPath(), "PUT", Prefix+RouteRemoveDevice, []byte(`{"id":"_disk1"}`))
	if r.status != http.StatusNoContent || !reflect.DeepEqual(fb.removed, []string{"_disk1"}) {
		t.Errorf("remove-device: %d, removed %v", r.status, fb.removed)
	}
}

func TestDeviceRoutesWithFakeBackendRefuseBadBodiesAndMapErrors(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	for _, c := range []struct {
		route, body string
		status      int
		want        string
	}{
		{RouteAddDisk, ``, 400, "needs a JSON request body"},
		{RouteAddDisk, `{"pth":"/img"}`, 400, `unknown field \"pth\"`},
		{RouteAddDisk, `{"path":7}`, 400, "path"},
		{RouteAddNet, `[]`, 400, "JSON object"},
		{RouteRemoveDevice, `{}`, 400, "id: the device to remove is required"},
		{RouteRemoveDevice, `{"id":"x","more":1}`, 400, `unknown field \"more\"`},
	} {
		r := do(t, s.SocketPath(), "PUT", Prefix+c.route, []byte(c.body))
		if r.status != c.status || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s %s: %d %s, want %d with %q", c.route, c.body, r.status, r.body, c.status, c.want)
		}
	}
	for _, c := range []struct {
		method string
		err    error
		status int
		head   string
	}{
		{"AddDisk", fmt.Errorf("Identifier data is not unique: %w", vm.ErrConflict), 409, "The disk could not be added to the VM"},
		{"AddDisk", fmt.Errorf("disk /x: no such file or directory: %w", vm.ErrInvalid), 400, "The disk could not be added to the VM"},
		{"RemoveDevice", fmt.Errorf("No device with id \"x\" to remove: %w", vm.ErrNotFound), 404, "The device could not be removed from the VM"},
	} {
		fb.fail(c.method, c.err)
		route, body := RouteAddDisk, `{"path":"/img"}`
		if c.method == "RemoveDevice" {
			route, body = RouteRemoveDevice, `{"id":"x"}`
		}
		r := do(t, s.SocketPath(), "PUT", Prefix+route, []byte(body))
		msgs := r.messages(t)
		if r.status != c.status || len(msgs) < 3 || msgs[0] != errorFromAPI || msgs[1] != c.head {
			t.Errorf("%s failing with %v: %d %q", c.method, c.err, r.status, msgs)
		}
		fb.fail(c.method, nil)
	}
}

func TestClientDeviceCallsWithFakeBackend(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	c := NewClient(s.SocketPath())
	ctx := context.Background()
	info, err := c.AddDisk(ctx, config.Disk{Path: "/img"})
	if err != nil || info != nil {
		t.Errorf("AddDisk before boot: %v, %v", info, err)
	}
	fb.addReply = &vm.PCIDeviceInfo{ID: "_net2", BDF: "0000:00:04.0"}
	info, err = c.AddNet(ctx, config.Net{Tap: "tap0"})
	if err != nil || info == nil || *info != *fb.addReply {
		t.Errorf("AddNet: %v, %v", info, err)
	}
	if _, err := c.AddVsock(ctx, config.Vsock{CID: 3, Socket: "/s"}); err != nil {
		t.Error(err)
	}
	fb.fail("RemoveDevice", fmt.Errorf("no such device: %w", vm.ErrNotFound))
	if err := c.RemoveDevice(ctx, "x"); !IsStatus(err, 404) || !errors.Is(err, vm.ErrNoVM) {
		t.Errorf("RemoveDevice of an unknown id: %v", err)
	}
	if b, _ := json.Marshal(fb.added[0]); !strings.Contains(string(b), `"path":"/img"`) {
		t.Errorf("AddDisk sent %s", b)
	}
}

func TestResizeZoneWithFakeBackendSaysVmmHasNoMemoryZones(t *testing.T) {
	s, fb := startFakeServer(t, Options{})
	r := do(t, s.SocketPath(), "PUT", Prefix+RouteResizeZone, []byte(`{"id":"mem0","desired_ram":1073741824}`))
	msgs := strings.Join(r.messages(t), ": ")
	if r.status != http.StatusBadRequest || !strings.Contains(msgs, `memory zone "mem0"`) || !strings.Contains(msgs, "vmm has no memory zones") ||
		!strings.Contains(msgs, "The memory zone could not be resized") {
		t.Errorf("resize-zone: %d %s", r.status, msgs)
	}
	for _, body := range []string{`{"desired_ram":1}`, `{"id":"mem0"}`, `{"id":"mem0","desired_ram":1,"x":1}`} {
		if r := do(t, s.SocketPath(), "PUT", Prefix+RouteResizeZone, []byte(body)); r.status != http.StatusBadRequest {
			t.Errorf("resize-zone %s: %d, want 400", body, r.status)
		}
	}
	fb.fail("Info", fmt.Errorf("no VM: %w", vm.ErrNoVM))
	if r := do(t, s.SocketPath(), "PUT", Prefix+RouteResizeZone, []byte(`{"id":"mem0","desired_ram":1}`)); r.status != http.StatusNotFound {
		t.Errorf("resize-zone without a VM: %d %s, want 404", r.status, r.body)
	}
}

func TestAddRngWithFakeBackendGetsCloudHypervisorsNotFound(t *testing.T) {
	// Cloud Hypervisor has no vm.add-rng: an unknown path, 404 "Not Found".
	s, _ := startFakeServer(t, Options{})
	r := do(t, s.SocketPath(), "PUT", Prefix+"vm.add-rng", []byte(`{"src":"/dev/urandom"}`))
	if msgs := r.messages(t); r.status != http.StatusNotFound || len(msgs) == 0 || msgs[0] != "Not Found" {
		t.Errorf("vm.add-rng: %d %q, want 404 with [\"Not Found\", ...]", r.status, msgs)
	}
}
