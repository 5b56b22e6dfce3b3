package http1

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Field is one header field of a message to write.
type Field struct{ Name, Value string }

// AppendReply appends a reply to buf: its status line, a Content-Length
// (but for 1xx, 204 and 304, which have no body), the fields, and body.
func AppendReply(buf []byte, status int, fields []Field, body []byte) []byte {
	buf = append(buf, "HTTP/1.1 "...)
	buf = strconv.AppendInt(buf, int64(status), 10)
	buf = append(buf, ' ')
	buf = append(buf, StatusText(status)...)
	buf = append(buf, "\r\n"...)
	for _, f := range fields {
		buf = appendField(buf, f.Name, f.Value)
	}
	if bodyAllowed(status) {
		buf = appendField(buf, "Content-Length", strconv.Itoa(len(body)))
	}
	buf = append(buf, "\r\n"...)
	if bodyAllowed(status) {
		buf = append(buf, body...)
	}
	return buf
}

// AppendRequest appends a request to buf: method and path, the fields,
// and, when body is not nil, a Content-Length and the body.
func AppendRequest(buf []byte, method, path string, fields []Field, body []byte) []byte {
	buf = append(buf, method...)
	buf = append(buf, ' ')
	buf = append(buf, path...)
	buf = append(buf, " HTTP/1.1\r\n"...)
	for _, f := range fields {
		buf = appendField(buf, f.Name, f.Value)
	}
	if body != nil {
		buf = appendField(buf, "Content-Length", strconv.Itoa(len(body)))
	}
	buf = append(buf, "\r\n"...)
	return append(buf, body...)
}

func appendField(buf []byte, name, value string) []byte {
	buf = append(buf, name...)
	buf = append(buf, ": "...)
	buf = append(buf, value...)
	return append(buf, "\r\n"...)
}

// bodyAllowed reports whether a reply with status carries a body.
func bodyAllowed(status int) bool {
	return status >= 200 && status != StatusNoContent && status != StatusNotModified
}

// Reply is a reply read by ReadReply.
type Reply struct {
	Status int
	Header Header
	Body   []byte
	// Close is set when the server ends the connection after this reply.
	Close bool
}

// ReadReply reads the reply to a request with method, skipping interim
// (1xx) replies; the body is read whole, at most limit bytes of it.
func ReadReply(r *bufio.Reader, method string, limit int64) (Reply, error) {
	for {
		rep, err := readReplyHead(r)
		if err != nil {
			return rep, err
		}
		if rep.Status >= 100 && rep.Status < 200 {
			continue
		}
		if method == "HEAD" || !bodyAllowed(rep.Status) {
			return rep, nil
		}
		te, hasTE := rep.Header["transfer-encoding"]
		cl, hasCL := rep.Header["content-length"]
		switch {
		case hasTE:
			if !strings.EqualFold(strings.TrimSpace(te), "chunked") {
				return rep, fmt.Errorf("reply's Transfer-Encoding %q is not supported", clip(te))
			}
			rep.Body, err = readChunked(r, limit)
		case hasCL:
			var n int64
			if n, err = contentLength(cl); err == nil {
				rep.Body, err = readBody(r, n, limit)
			}
		default: // the body runs to the end of the connection
			rep.Close = true
			rep.Body, err = io.ReadAll(io.LimitReader(r, limit+1))
			if err == nil && int64(len(rep.Body)) > limit {
				err = ErrBodyTooLarge
			}
		}
		return rep, err
	}
}

// readReplyHead reads a reply's status line and header fields.
func readReplyHead(r *bufio.Reader) (Reply, error) {
	var rep Reply
	budget := 1 << 20
	line, err := readLine(r, &budget)
	if err != nil {
		return rep, unexpected(err)
	}
	version, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if !strings.HasPrefix(version, "HTTP/1.") || err != nil || len(code) != 3 {
		return rep, fmt.Errorf("malformed status line %q", clip(line))
	}
	rep.Status = status
	if rep.Header, err = readHeader(r, &budget); err != nil {
		return rep, err
	}
	conn := strings.ToLower(rep.Header["connection"])
	rep.Close = hasToken(conn, "close") || (version == "HTTP/1.0" && !hasToken(conn, "keep-alive"))
	return rep, nil
}
