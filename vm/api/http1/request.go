// Package http1 reads and writes the HTTP/1.1 messages of vmm's API: a
// request line or status line, header fields, and a body held whole in
// memory (Content-Length or chunked). It is the part of HTTP a REST API on
// a unix socket needs, as Cloud Hypervisor's and Firecracker's micro_http
// are: no TLS, no HTTP/2, no proxies, no multipart. It keeps net/http, and
// the TLS and certificate code that comes with it, out of the vmm binary,
// where they were half of its size and of its resident pages.
//
// The reader is strict where a lenient one would let two parties disagree
// on where a message ends (RFC 9112, section 6.3: both Content-Length and
// Transfer-Encoding, conflicting lengths, a transfer coding other than
// chunked, obsolete line folding are refused) and lenient where nothing is
// at stake (a bare LF ends a line; Host is not required).
package http1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Methods the API uses.
const (
	MethodGet = "GET"
	MethodPut = "PUT"
)

// Statuses the API uses.
const (
	StatusContinue              = 100
	StatusOK                    = 200
	StatusNoContent             = 204
	StatusNotModified           = 304
	StatusBadRequest            = 400
	StatusNotFound              = 404
	StatusMethodNotAllowed      = 405
	StatusConflict              = 409
	StatusRequestEntityTooLarge = 413
	StatusExpectationFailed     = 417
	StatusTooManyRequests       = 429
	StatusHeaderFieldsTooLarge  = 431
	StatusInternalServerError   = 500
	StatusNotImplemented        = 501
	StatusVersionNotSupported   = 505
)

// StatusText is a status's reason phrase ("Not Found"), or "" for a status
// this package does not name.
func StatusText(code int) string {
	switch code {
	case StatusContinue:
		return "Continue"
	case StatusOK:
		return "OK"
	case StatusNoContent:
		return "No Content"
	case StatusNotModified:
		return "Not Modified"
	case StatusBadRequest:
		return "Bad Request"
	case StatusNotFound:
		return "Not Found"
	case StatusMethodNotAllowed:
		return "Method Not Allowed"
	case StatusConflict:
		return "Conflict"
	case StatusRequestEntityTooLarge:
		return "Request Entity Too Large"
	case StatusExpectationFailed:
		return "Expectation Failed"
	case StatusTooManyRequests:
		return "Too Many Requests"
	case StatusHeaderFieldsTooLarge:
		return "Request Header Fields Too Large"
	case StatusInternalServerError:
		return "Internal Server Error"
	case StatusNotImplemented:
		return "Not Implemented"
	case StatusVersionNotSupported:
		return "HTTP Version Not Supported"
	}
	return ""
}

// Error is a request the reader refuses, with the status to answer it
// with; the connection cannot be read further after one.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func refuse(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// ErrBodyTooLarge is returned by ReadBody for a body over its limit.
var ErrBodyTooLarge = errors.New("body over the limit")

// Header holds a message's header fields by lower-case name; a field that
// comes several times has its values joined with ", " (RFC 9110, 5.3).
type Header map[string]string

// Get returns the value of the field name (any case), or "".
func (h Header) Get(name string) string { return h[strings.ToLower(name)] }

// Request is a request's head, read by ReadRequest; its body follows on the
// reader, and ReadBody reads it.
type Request struct {
	Method string
	// Path is the request target's path, without its query, decoded from
	// percent-encoding.
	Path string
	// Minor is the version's minor number: HTTP/1.0 or HTTP/1.1.
	Minor  int
	Header Header
	// ContentLength is the body's length; -1 when it is chunked.
	ContentLength int64
	// ExpectContinue is set when the client waits for "100 Continue"
	// before it sends the body.
	ExpectContinue bool
	// Close is set when the connection ends after the reply: the client
	// asked for it, or spoke HTTP/1.0 without asking to keep it alive.
	Close bool
}

// ReadRequest reads a request's line and header fields, at most maxHeader
// bytes of them. It returns io.EOF when the connection ended cleanly before
// a request, an *Error for a request to refuse, or the reader's error.
func ReadRequest(r *bufio.Reader, maxHeader int) (*Request, error) {
	budget := maxHeader
	line, err := readLine(r, &budget)
	for err == nil && len(line) == 0 { // RFC 9112, 2.2: empty lines before a request are ignored
		line, err = readLine(r, &budget)
	}
	if err != nil {
		return nil, err
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, version, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !isToken(method) || target == "" || strings.ContainsAny(target, " \t") {
		return nil, refuse(StatusBadRequest, "malformed request line %q", clip(line))
	}
	req := &Request{Method: method, ContentLength: 0}
	switch version {
	case "HTTP/1.1":
		req.Minor = 1
	case "HTTP/1.0":
		req.Minor = 0
	default:
		if strings.HasPrefix(version, "HTTP/") {
			return nil, refuse(StatusVersionNotSupported, "HTTP version %q is not supported: HTTP/1.1 is", clip(version))
		}
		return nil, refuse(StatusBadRequest, "malformed request line %q", clip(line))
	}
	if req.Path, err = requestPath(target); err != nil {
		return nil, err
	}
	if req.Header, err = readHeader(r, &budget); err != nil {
		return nil, err
	}
	if err := req.framing(); err != nil {
		return nil, err
	}
	return req, nil
}

// requestPath is the path of a request target in origin form ("/a/b?q")
// or absolute form ("http://host/a/b").
func requestPath(target string) (string, error) {
	if rest, ok := strings.CutPrefix(target, "http://"); ok {
		_, path, _ := strings.Cut(rest, "/")
		target = "/" + path
	}
	if !strings.HasPrefix(target, "/") {
		return "", refuse(StatusBadRequest, "request target %q is not a path", clip(target))
	}
	target, _, _ = strings.Cut(target, "?")
	target, _, _ = strings.Cut(target, "#")
	path, err := unescape(target)
	if err != nil {
		return "", refuse(StatusBadRequest, "request target %q: %v", clip(target), err)
	}
	return path, nil
}

// unescape decodes a path's percent-encoding.
func unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("bad percent-encoding")
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", errors.New("bad percent-encoding")
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// framing reads, from the header, where the body ends and whether the
// connection stays open.
func (req *Request) framing() error {
	h := req.Header
	te, hasTE := h["transfer-encoding"]
	cl, hasCL := h["content-length"]
	switch {
	case hasTE && hasCL:
		return refuse(StatusBadRequest, "both Transfer-Encoding and Content-Length")
	case hasTE:
		if !strings.EqualFold(strings.TrimSpace(te), "chunked") {
			return refuse(StatusNotImplemented, "Transfer-Encoding %q is not supported: chunked is", clip(te))
		}
		req.ContentLength = -1
	case hasCL:
		n, err := contentLength(cl)
		if err != nil {
			return err
		}
		req.ContentLength = n
	}
	if e, ok := h["expect"]; ok {
		if !strings.EqualFold(e, "100-continue") {
			return refuse(StatusExpectationFailed, "Expect %q is not supported: 100-continue is", clip(e))
		}
		req.ExpectContinue = req.Minor == 1
	}
	conn := strings.ToLower(h["connection"])
	req.Close = hasToken(conn, "close") || (req.Minor == 0 && !hasToken(conn, "keep-alive"))
	return nil
}

// contentLength parses a Content-Length value; a field that came several
// times must have said the same each time.
func contentLength(v string) (int64, error) {
	var n int64 = -1
	for rest, more := v, true; more; {
		var part string
		part, rest, more = strings.Cut(rest, ",")
		part = strings.TrimSpace(part)
		m, err := strconv.ParseInt(part, 10, 64)
		if err != nil || m < 0 || part[0] == '+' {
			return 0, refuse(StatusBadRequest, "bad Content-Length %q", clip(v))
		}
		if n >= 0 && m != n {
			return 0, refuse(StatusBadRequest, "conflicting Content-Length %q", clip(v))
		}
		n = m
	}
	return n, nil
}

// ReadBody reads the request's body, at most limit bytes: ErrBodyTooLarge
// beyond them. A body of known length over the limit is left unread; a
// chunked one is read on and dropped, up to MaxDiscard bytes more, so that
// a client still sending it gets to read the refusal (the reader is left
// inside the body when it is longer still).
func (req *Request) ReadBody(r *bufio.Reader, limit int64) ([]byte, error) {
	return readBody(r, req.ContentLength, limit)
}

// readBody reads a body of length n (-1: chunked) up to limit bytes.
func readBody(r *bufio.Reader, n, limit int64) ([]byte, error) {
	if n < 0 {
		return readChunked(r, limit)
	}
	if n > limit {
		return nil, ErrBodyTooLarge
	}
	if n == 0 {
		return nil, nil
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read body: %w", unexpected(err))
	}
	return body, nil
}

// maxChunkLine bounds a chunk's size line and a trailer field.
const maxChunkLine = 4 << 10

// MaxDiscard is how much of a body over its limit is read and dropped
// (by ReadBody for a chunked one, by the server for one of known length)
// so that a client still sending it gets to read the refusal.
const MaxDiscard = 16 << 20

// readChunked reads a chunked body (RFC 9112, 7.1), trailers discarded.
func readChunked(r *bufio.Reader, limit int64) ([]byte, error) {
	var body []byte
	for {
		n, err := chunkSize(r)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return body, trailers(r)
		}
		if int64(len(body))+int64(n) > limit {
			return nil, discardChunks(r, n, limit+MaxDiscard-int64(len(body)))
		}
		start := len(body)
		body = append(body, make([]byte, n)...)
		if _, err := io.ReadFull(r, body[start:]); err != nil {
			return nil, fmt.Errorf("read chunk: %w", unexpected(err))
		}
		if err := chunkEnd(r); err != nil {
			return nil, err
		}
	}
}

// discardChunks reads and drops the rest of a chunked body, starting with
// the data of a chunk of n bytes, up to budget bytes; it returns
// ErrBodyTooLarge, or the error that ended the reading.
func discardChunks(r *bufio.Reader, n uint64, budget int64) error {
	for n > 0 {
		if int64(n) > budget {
			return ErrBodyTooLarge
		}
		budget -= int64(n)
		if _, err := r.Discard(int(n)); err != nil {
			return fmt.Errorf("read chunk: %w", unexpected(err))
		}
		if err := chunkEnd(r); err != nil {
			return err
		}
		var err error
		if n, err = chunkSize(r); err != nil {
			return err
		}
	}
	if err := trailers(r); err != nil {
		return err
	}
	return ErrBodyTooLarge
}

// chunkSize reads a chunk's size line (extensions ignored).
func chunkSize(r *bufio.Reader) (uint64, error) {
	budget := maxChunkLine
	line, err := readLine(r, &budget)
	if err != nil {
		return 0, fmt.Errorf("read chunk size: %w", unexpected(err))
	}
	size, _, _ := strings.Cut(line, ";")
	n, err := strconv.ParseUint(strings.TrimSpace(size), 16, 63)
	if err != nil {
		return 0, refuse(StatusBadRequest, "bad chunk size %q", clip(line))
	}
	return n, nil
}

// chunkEnd reads the CRLF after a chunk's data.
func chunkEnd(r *bufio.Reader) error {
	budget := maxChunkLine
	if end, err := readLine(r, &budget); err != nil || end != "" {
		return refuse(StatusBadRequest, "chunk not followed by CRLF")
	}
	return nil
}

// trailers reads and drops the trailer fields, up to the empty line.
func trailers(r *bufio.Reader) error {
	budget := maxChunkLine
	for {
		line, err := readLine(r, &budget)
		if err != nil {
			return fmt.Errorf("read trailer: %w", unexpected(err))
		}
		if line == "" {
			return nil
		}
	}
}

// readHeader reads header fields up to the empty line.
func readHeader(r *bufio.Reader, budget *int) (Header, error) {
	h := Header{}
	for {
		line, err := readLine(r, budget)
		if err != nil {
			return nil, unexpected(err)
		}
		if line == "" {
			return h, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, refuse(StatusBadRequest, "obsolete line folding in the header")
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken(name) {
			return nil, refuse(StatusBadRequest, "malformed header field %q", clip(line))
		}
		name, value = lowerName(name), strings.Trim(value, " \t")
		if old, ok := h[name]; ok {
			value = old + ", " + value
		}
		h[name] = value
	}
}

// lowerName is a field name in lower case; the names this package looks
// at, and the ones clients send most, come without an allocation.
func lowerName(name string) string {
	var buf [24]byte
	if len(name) > len(buf) {
		return strings.ToLower(name)
	}
	b := buf[:len(name)]
	for i := range len(name) {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	switch string(b) {
	case "host":
		return "host"
	case "content-length":
		return "content-length"
	case "content-type":
		return "content-type"
	case "transfer-encoding":
		return "transfer-encoding"
	case "connection":
		return "connection"
	case "expect":
		return "expect"
	case "accept":
		return "accept"
	case "user-agent":
		return "user-agent"
	case "date":
		return "date"
	case "server":
		return "server"
	}
	return string(b)
}

// readLine reads one line, without its CRLF or LF, taking its length from
// budget: a line that would overdraw it is refused with 431.
func readLine(r *bufio.Reader, budget *int) (string, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		*budget -= len(frag)
		if *budget < 0 {
			return "", refuse(StatusHeaderFieldsTooLarge, "request line and header fields are over the limit")
		}
		if line == nil && err == nil {
			line = frag // the whole line in one piece: no copy before the string
		} else {
			line = append(line, frag...)
		}
		switch {
		case err == nil:
			line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
			if bytes.ContainsAny(line, "\r\x00") {
				return "", refuse(StatusBadRequest, "stray CR or NUL in a line")
			}
			return string(line), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return "", io.ErrUnexpectedEOF
		default:
			return "", err
		}
	}
}

// unexpected turns an EOF inside a message into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// isToken reports whether s is an RFC 9110 token (a method, a field name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds tok.
func hasToken(v, tok string) bool {
	for more := true; more; {
		var t string
		t, v, more = strings.Cut(v, ",")
		if strings.TrimSpace(t) == tok {
			return true
		}
	}
	return false
}

// clip shortens what a message quotes from a request.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
