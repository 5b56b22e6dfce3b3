package vm

import (
	"bufio"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmmdev/vmm/vm/config"
	"github.com/vmmdev/vmm/vm/devices"
)

// TestConsoleModesConnectTheHostSide opens each mode's host side with a
// serial port attached and checks what a user of that mode sees: the
// guest's output, and input reaching the port.
func TestConsoleModesConnectTheHostSide(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		spec consoleSpec
		// connect opens the mode's host side as a user would; nil: no
		// input, output checked by check.
		connect func(t *testing.T, c *console) (read func() string, write func(string))
	}{
		{"pty", consoleSpec{name: "serial", mode: config.ModePty}, func(t *testing.T, c *console) (func() string, func(string)) {
			if !strings.HasPrefix(c.path, "/dev/pts/") {
				t.Fatalf("pty path %q", c.path)
			}
			f, err := os.OpenFile(c.path, os.O_RDWR, 0)
			if err != nil {
				t.Fatalf("the reported path does not open: %v", err)
			}
			t.Cleanup(func() { f.Close() })
			r := bufio.NewReader(f)
			return func() string { s, _ := r.ReadString('\n'); return s }, func(s string) { f.WriteString(s) }
		}},
		{"socket", consoleSpec{name: "serial", mode: config.ModeSocket, socket: filepath.Join(dir, "serial.sock")},
			func(t *testing.T, c *console) (func() string, func(string)) {
				conn, err := net.Dial("unix", c.spec.socket)
				if err != nil {
					t.Fatalf("a client cannot connect: %v", err)
				}
				t.Cleanup(func() { conn.Close() })
				// Output only reaches a client the console has accepted.
				deadline := time.Now().Add(5 * time.Second)
				for c.client.current() == nil && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				r := bufio.NewReader(conn)
				return func() string { s, _ := r.ReadString('\n'); return s }, func(s string) { conn.Write([]byte(s)) }
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			con, err := openConsole(c.spec, false, nil, nil, nopLogger())
			if err != nil {
				t.Fatal(err)
			}
			defer con.close()
			port := devices.NewSerial(0x3f8, 4, fakeIRQ{}, nil, nil)
			con.attach(port)
			read, write := c.connect(t, con)
			con.out.Write([]byte("login:\n"))
			if got := read(); got != "login:\n" {
				t.Errorf("the user read %q", got)
			}
			write("root\n")
			if got := readSerial(port, 5); got != "root\n" {
				t.Errorf("the guest read %q", got)
			}
		})
	}
}

func TestSocketConsoleRefusesAnExistingPathAndRemovesItsSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openConsole(consoleSpec{name: "serial", mode: config.ModeSocket, socket: path}, false, nil, nil, nopLogger()); !errors.Is(err, fs.ErrExist) {
		t.Errorf("existing path: %v", err)
	}
	os.Remove(path)
	c, err := openConsole(consoleSpec{name: "serial", mode: config.ModeSocket, socket: path}, false, nil, nil, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	c.close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestCheckConsolesFollowsCloudHypervisor(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*config.VM)
		want string
	}{
		{"console socket", func(c *config.VM) { c.Console = config.Console{Mode: config.ModeSocket, Socket: "/s"} }, "No socket option support for console device"},
		{"serial socket without path", func(c *config.VM) { c.Serial = config.Serial{Mode: config.ModeSocket} }, "Path missing when using socket console mode"},
		{"console file without path", func(c *config.VM) { c.Console = config.Console{Mode: config.ModeFile} }, "Path missing when using file console mode"},
		{"both on the terminal", func(c *config.VM) { c.Serial.Mode, c.Console.Mode = config.ModeTty, config.ModeTty }, ""},
		{"serial socket, console pty", func(c *config.VM) {
			c.Serial, c.Console = config.Serial{Mode: config.ModeSocket, Socket: "/s"}, config.Console{Mode: config.ModePty}
		}, ""},
	} {
		cfg := config.Default()
		c.edit(&cfg)
		err := checkConsoles(&cfg)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestSocketConsoleHandsTheNextClientWhatCameBeforeIt(t *testing.T) {
	var w clientWriter
	w.Write([]byte("early boot\n"))
	a, b := net.Pipe()
	defer b.Close()
	go w.set(a)
	r := bufio.NewReader(b)
	if got, _ := r.ReadString('\n'); got != "early boot\n" {
		t.Errorf("the first client read %q", got)
	}
	big := make([]byte, 2*maxHeldOutput)
	var w2 clientWriter
	w2.Write(big)
	if len(w2.held) != maxHeldOutput {
		t.Errorf("held %d bytes, want the last %d", len(w2.held), maxHeldOutput)
	}
}
