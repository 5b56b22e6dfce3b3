package landlock

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary run childMain instead of the tests: the
// process confined is a child, never the test's.
const childEnv = "VMM_LANDLOCK_TEST_CHILD"

func TestMain(m *testing.M) {
	if dirs := os.Getenv(childEnv); dirs != "" {
		os.Exit(childMain(strings.Split(dirs, ":")))
	}
	os.Exit(m.Run())
}

// childMain confines itself to allowed (rw) and ro (r), then checks from
// several goroutines (so on several threads) what it can open.
func childMain(dirs []string) int {
	allowed, ro, denied := dirs[0], dirs[1], dirs[2]
	for range 4 {
		go func() { time.Sleep(time.Hour) }()
	}
	if err := Restrict([]Rule{{Path: allowed, Access: Read | Write}, {Path: ro, Access: Read}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	errc := make(chan error, 16)
	for range 8 {
		go func() {
			if err := os.WriteFile(filepath.Join(allowed, "f"), []byte("x"), 0o600); err != nil {
				errc <- fmt.Errorf("write beneath the rw rule: %w", err)
				return
			}
			if _, err := os.ReadFile(filepath.Join(ro, "f")); err != nil {
				errc <- fmt.Errorf("read beneath the r rule: %w", err)
				return
			}
			if err := os.WriteFile(filepath.Join(ro, "g"), nil, 0o600); !errors.Is(err, unix.EACCES) {
				errc <- fmt.Errorf("write beneath the r rule: %v, want EACCES", err)
				return
			}
			if _, err := os.ReadFile(filepath.Join(denied, "f")); !errors.Is(err, unix.EACCES) {
				errc <- fmt.Errorf("read outside the rules: %v, want EACCES", err)
				return
			}
			errc <- nil
		}()
	}
	for range 8 {
		if err := <-errc; err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
	}
	return 0
}

func TestRestrictConfinesEveryThreadInAChildProcess(t *testing.T) {
	if err := Check(); err != nil {
		t.Skipf("no Landlock here: %v", err)
	}
	var dirs []string
	for range 3 {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(dirs, ":"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
}

func TestParseAccess(t *testing.T) {
	for s, want := range map[string]Access{"r": Read, "w": Write, "rw": Read | Write, "wr": Read | Write} {
		if got, err := ParseAccess(s); err != nil || got != want {
			t.Errorf("ParseAccess(%q) = %#x, %v; want %#x", s, got, err, want)
		}
	}
	for _, s := range []string{"", "x", "rwx"} {
		if _, err := ParseAccess(s); err == nil {
			t.Errorf("ParseAccess(%q): no error", s)
		}
	}
}

func TestHandledRightsGrowWithTheABI(t *testing.T) {
	if handled(1)&unix.LANDLOCK_ACCESS_FS_REFER != 0 || handled(2)&unix.LANDLOCK_ACCESS_FS_REFER == 0 ||
		handled(2)&unix.LANDLOCK_ACCESS_FS_TRUNCATE != 0 || handled(6)&unix.LANDLOCK_ACCESS_FS_TRUNCATE == 0 {
		t.Errorf("handled: %#x %#x %#x", handled(1), handled(2), handled(6))
	}
	if (Read|Write)&^handled(3) != 0 {
		t.Errorf("r and w give rights the ruleset does not handle: %#x", (Read|Write)&^handled(3))
	}
}
