package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
)

// ErrConsoleClosed is returned by waits on a console whose writer went away
// (the vmm exited) before the awaited output arrived.
var ErrConsoleClosed = errors.New("console closed")

// Console records everything a guest writes on its serial console. It keeps
// the raw bytes and a text view for matching: escape sequences (such as
// busybox's ESC [6n cursor query), carriage returns and other control bytes
// except newline and tab are dropped from the text. Waits run against the
// text. Console is an io.Writer: the vmm's stdout is copied into it. It is
// safe for concurrent use.
type Console struct {
	mu      sync.Mutex
	raw     []byte
	text    []byte
	clean   cleaner
	changed chan struct{} // closed and replaced on every change
	closed  bool
	cause   error // why the console closed, if it did
	tee     io.Writer
}

// NewConsole returns an empty console. The text view of everything written
// is also copied to tee, when tee is not nil; tee's errors are ignored.
func NewConsole(tee io.Writer) *Console {
	return &Console{changed: make(chan struct{}), tee: tee}
}

// Write records p. It never fails.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.raw = append(c.raw, p...)
	start := len(c.text)
	c.text = c.clean.append(c.text, p)
	var out []byte
	if c.tee != nil && len(c.text) > start {
		out = bytes.Clone(c.text[start:])
	}
	c.notifyLocked()
	c.mu.Unlock()
	if out != nil {
		_, _ = c.tee.Write(out)
	}
	return len(p), nil
}

// Close marks the end of the output: waits that are not satisfied yet fail
// with ErrConsoleClosed, wrapping cause when it is not nil. Later writes are
// still recorded.
func (c *Console) Close(cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed, c.cause = true, cause
	c.notifyLocked()
}

func (c *Console) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// CutSequence forgets an escape sequence the output left unfinished: a
// reset of the guest cuts its output wherever it was (busybox's shell
// follows each prompt with ESC [ 6 n, a byte at a time through the
// UART), and the next boot's first bytes are text, not the rest of a
// sequence: without this, "ESC" then "VMM-GUEST-READY" reads as the
// sequence ESC V and "MM-GUEST-READY".
func (c *Console) CutSequence() {
	c.mu.Lock()
	c.clean = cleaner{}
	c.mu.Unlock()
}

// Bytes returns a copy of every byte written, unfiltered.
func (c *Console) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.raw)
}

// String returns the text view of everything written.
func (c *Console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.text)
}

// Len is the length of the text view: an offset to start a later wait from.
func (c *Console) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.text)
}

// Tail returns the last lines of the text view (at most n), for failure
// messages.
func (c *Console) Tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return tailLines(c.text, n)
}

// CountLinesEndingWith returns how many lines of the text view end with
// suffix, ignoring trailing blanks. A last line without its newline does not
// count yet.
func (c *Console) CountLinesEndingWith(suffix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	lc := lineCounter{suffix: []byte(suffix)}
	return lc.count(c.text)
}

// CountLinesEndingWith counts the complete lines of text (a last line
// without its newline yet does not count) that end with suffix, blanks
// aside, as Console.CountLinesEndingWith counts its text's: ending with,
// since a boot's first line may follow the previous shell's prompt.
func CountLinesEndingWith(text, suffix string) int {
	lc := lineCounter{suffix: []byte(suffix)}
	return lc.count([]byte(text))
}

// WaitFor waits until the text view from offset from on matches re. It
// returns the match and the offset just past it.
func (c *Console) WaitFor(ctx context.Context, from int, re *regexp.Regexp) (string, int, error) {
	var match string
	var end int
	err := c.Wait(ctx, func(text []byte) bool {
		if from > len(text) {
			from = len(text)
		}
		loc := re.FindIndex(text[from:])
		if loc == nil {
			return false
		}
		match, end = string(text[from+loc[0]:from+loc[1]]), from+loc[1]
		return true
	})
	if err != nil {
		return "", 0, fmt.Errorf("waiting for /%s/ on the console: %w", re, err)
	}
	return match, end, nil
}

// Wait calls cond with the text view (which it must not keep or modify) now
// and after every change until cond returns true, ctx ends, or the console
// closes. cond runs with the console locked and must be quick; it may keep
// state between calls to avoid rescanning.
func (c *Console) Wait(ctx context.Context, cond func(text []byte) bool) error {
	for {
		c.mu.Lock()
		ok := cond(c.text)
		changed, closed, cause := c.changed, c.closed, c.cause
		c.mu.Unlock()
		if ok {
			return nil
		}
		if closed {
			if cause != nil {
				return fmt.Errorf("%w: %w", ErrConsoleClosed, cause)
			}
			return ErrConsoleClosed
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-changed:
		}
	}
}

// tailLines returns the last n lines of text.
func tailLines(text []byte, n int) string {
	t := bytes.TrimRight(text, "\n")
	if n <= 0 {
		return ""
	}
	i := len(t)
	for k := 1; ; k++ {
		j := bytes.LastIndexByte(t[:i], '\n')
		if j < 0 {
			return string(t)
		}
		if k == n {
			return string(t[j+1:])
		}
		i = j
	}
}

// lineCounter counts the complete lines that end with suffix (blanks aside)
// in a growing text, scanning each line once. Ending with is enough and
// needed: after a reboot the first line of the new boot may follow the old
// shell's prompt, which has no newline. Only complete lines count: a line
// without its newline yet may still be extended, as when a reboot cuts the
// guest off right after the marker and the next boot's first message lands
// on the same line.
type lineCounter struct {
	suffix []byte
	next   int // start of the first line not yet counted
	n      int
}

func (lc *lineCounter) count(text []byte) int {
	for {
		i := bytes.IndexByte(text[lc.next:], '\n')
		if i < 0 {
			break
		}
		if bytes.HasSuffix(bytes.TrimSpace(text[lc.next:lc.next+i]), lc.suffix) {
			lc.n++
		}
		lc.next += i + 1
	}
	return lc.n
}

// cleaner turns terminal output into plain text, one chunk at a time: it
// drops ECMA-48 escape sequences (CSI, OSC and other string sequences, and
// two- or three-byte escapes), carriage returns and control bytes other than
// newline and tab. Sequences may span chunks.
type cleaner struct {
	state cleanState
	n     int // bytes inside the current string sequence
}

type cleanState int

const (
	cleanText     cleanState = iota
	cleanEsc                 // after ESC
	cleanCSI                 // inside ESC [ ... final
	cleanString              // inside OSC, DCS, SOS, PM or APC: up to BEL or ESC \
	cleanStringEs            // ESC inside a string sequence
	cleanInter               // ESC followed by intermediate bytes, up to a final byte
)

// maxStringSeq bounds a string sequence whose terminator never comes, so that
// a stray ESC ] cannot swallow the rest of the output.
const maxStringSeq = 512

const esc = 0x1b

// append appends the plain text of p to dst.
func (cl *cleaner) append(dst, p []byte) []byte {
	for _, b := range p {
		switch cl.state {
		case cleanText:
			switch {
			case b == esc:
				cl.state = cleanEsc
			case b == '\n' || b == '\t' || b >= 0x20 && b != 0x7f:
				dst = append(dst, b)
			}
		case cleanEsc:
			switch {
			case b == '[':
				cl.state = cleanCSI
			case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
				cl.state, cl.n = cleanString, 0
			case b >= 0x20 && b <= 0x2f:
				cl.state = cleanInter
			case b == esc:
				// ESC ESC: start over.
			default:
				cl.state = cleanText
			}
		case cleanCSI:
			switch {
			case b >= 0x40 && b <= 0x7e:
				cl.state = cleanText
			case b < 0x20:
				// A malformed sequence: drop it and keep the byte.
				cl.state = cleanText
				dst = cl.append(dst, []byte{b})
			}
		case cleanString:
			cl.n++
			switch {
			case b == 0x07:
				cl.state = cleanText
			case b == esc:
				cl.state = cleanStringEs
			case cl.n > maxStringSeq:
				cl.state = cleanText
			}
		case cleanStringEs:
			if b == '\\' {
				cl.state = cleanText
			} else {
				cl.state = cleanString
			}
		case cleanInter:
			if b < 0x20 || b > 0x2f {
				cl.state = cleanText
			}
		}
	}
	return dst
}
