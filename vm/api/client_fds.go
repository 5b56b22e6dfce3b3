package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/vmmdev/vmm/vm"
	"github.com/vmmdev/vmm/vm/api/http1"
	"github.com/vmmdev/vmm/vm/config"
)

// AddNetFDs adds a net on taps the caller opened (vm.add-net with the
// taps passed as SCM_RIGHTS, as Kata Containers adds its nets): n's "fds"
// are the passed descriptors. The caller keeps its files; vmm works on
// duplicates.
func (c *Client) AddNetFDs(ctx context.Context, n config.Net, taps ...*os.File) (*vm.PCIDeviceInfo, error) {
	body, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("%s: encode request: %w", RouteAddNet, err)
	}
	status, reply, err := c.DoWithFiles(ctx, http1.MethodPut, RouteAddNet, body, taps...)
	if err != nil {
		return nil, err
	}
	if !Succeeded(status) {
		return nil, ReplyError(status, reply)
	}
	if len(bytes.TrimSpace(reply)) == 0 {
		return nil, nil
	}
	var info vm.PCIDeviceInfo
	if err := json.Unmarshal(reply, &info); err != nil {
		return nil, fmt.Errorf("%s: decode reply: %w", RouteAddNet, err)
	}
	return &info, nil
}

// DoWithFiles is Do on a connection of its own, with files passed as
// SCM_RIGHTS along with the request: the whole request goes in one
// sendmsg, as Kata Containers sends it.
func (c *Client) DoWithFiles(ctx context.Context, method, route string, body []byte, files ...*os.File) (status int, reply []byte, err error) {
	wire := requestBytes(method, route, body)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	conn, err := dial(ctx, c.socketPath)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s via %s: %w", method, route, c.socketPath, err)
	}
	defer conn.Close()
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	cc := &clientConn{Conn: conn, r: bufio.NewReader(conn)}
	rep, _, err := cc.roundTrip(ctx, method, func() error {
		n, oobn, err := conn.(*net.UnixConn).WriteMsgUnix(wire, syscall.UnixRights(fds...), nil)
		if err == nil && (n != len(wire) || (len(fds) > 0 && oobn == 0)) {
			err = fmt.Errorf("sent %d of %d bytes", n, len(wire))
		}
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s via %s: %w", method, route, c.socketPath, err)
	}
	return rep.Status, rep.Body, nil
}
