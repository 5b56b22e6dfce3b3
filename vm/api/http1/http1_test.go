package http1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func reader(s string) *bufio.Reader { return bufio.NewReaderSize(strings.NewReader(s), 64) }

func TestReadRequestTakesWhatClientsSendAndRefusesWhatIsAmbiguous(t *testing.T) {
	for _, c := range []struct {
		name, in string
		status   int // 0: accepted
		method   string
		path     string
		length   int64
		expect   bool
		close    bool
	}{
		{name: "curl GET", in: "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl\r\nAccept: */*\r\n\r\n", method: "GET", path: "/api/v1/vmm.ping"},
		{name: "bare LF line ends", in: "GET /a HTTP/1.1\nHost: x\n\n", method: "GET", path: "/a"},
		{name: "empty lines before the request", in: "\r\n\r\nGET /a HTTP/1.1\r\n\r\n", method: "GET", path: "/a"},
		{name: "no Host", in: "PUT /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", method: "PUT", path: "/a", length: 2},
		{name: "query and fragment dropped", in: "GET /a/b?x=1#f HTTP/1.1\r\n\r\n", method: "GET", path: "/a/b"},
		{name: "absolute form", in: "GET http://localhost/api/v1/vm.info HTTP/1.1\r\n\r\n", method: "GET", path: "/api/v1/vm.info"},
		{name: "percent-encoding decoded", in: "GET /api/v1/vm%2Einfo HTTP/1.1\r\n\r\n", method: "GET", path: "/api/v1/vm.info"},
		{name: "chunked", in: "PUT /a HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", method: "PUT", path: "/a", length: -1},
		{name: "same length twice", in: "PUT /a HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", method: "PUT", path: "/a", length: 2},
		{name: "one length twice in a field", in: "PUT /a HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n", method: "PUT", path: "/a", length: 2},
		{name: "names in any case", in: "PUT /a HTTP/1.1\r\nCONTENT-LENGTH: 2\r\nX-A-Field-Name-Over-24-Bytes: v\r\n\r\n", method: "PUT", path: "/a", length: 2},
		{name: "Expect 100-continue", in: "PUT /a HTTP/1.1\r\nContent-Length: 2000\r\nExpect: 100-Continue\r\n\r\n", method: "PUT", path: "/a", length: 2000, expect: true},
		{name: "Connection close", in: "GET /a HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", method: "GET", path: "/a", close: true},
		{name: "HTTP/1.0 closes", in: "GET /a HTTP/1.0\r\n\r\n", method: "GET", path: "/a", close: true},
		{name: "HTTP/1.0 keep-alive", in: "GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", method: "GET", path: "/a"},
		{name: "both lengths", in: "PUT /a HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "conflicting lengths", in: "PUT /a HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", status: 400},
		{name: "conflicting lengths in a field", in: "PUT /a HTTP/1.1\r\nContent-Length: 2, 3\r\n\r\n", status: 400},
		{name: "signed length", in: "PUT /a HTTP/1.1\r\nContent-Length: +2\r\n\r\n", status: 400},
		{name: "negative length", in: "PUT /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n", status: 400},
		{name: "gzip coding", in: "PUT /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", status: 501},
		{name: "other Expect", in: "PUT /a HTTP/1.1\r\nExpect: magic\r\n\r\n", status: 417},
		{name: "HTTP/2", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", status: 505},
		{name: "no version", in: "GET /a\r\n\r\n", status: 400},
		{name: "not HTTP", in: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", status: 400},
		{name: "target not a path", in: "GET a HTTP/1.1\r\n\r\n", status: 400},
		{name: "bad percent-encoding", in: "GET /a%zz HTTP/1.1\r\n\r\n", status: 400},
		{name: "obsolete folding", in: "GET /a HTTP/1.1\r\nX: a\r\n b\r\n\r\n", status: 400},
		{name: "space before colon", in: "GET /a HTTP/1.1\r\nHost : x\r\n\r\n", status: 400},
		{name: "stray CR", in: "GET /a HTTP/1.1\r\nX: a\rb\r\n\r\n", status: 400},
		{name: "NUL in a field", in: "GET /a HTTP/1.1\r\nX: a\x00b\r\n\r\n", status: 400},
		{name: "header over the limit", in: "GET /a HTTP/1.1\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", status: 431},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := ReadRequest(reader(c.in), 1024)
			if c.status != 0 {
				var e *Error
				if !errors.As(err, &e) || e.Status != c.status {
					t.Fatalf("got %v (%#v), want a refusal with %d", err, req, c.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Method != c.method || req.Path != c.path || req.ContentLength != c.length || req.ExpectContinue != c.expect || req.Close != c.close {
				t.Errorf("got %+v", req)
			}
		})
	}
}

func TestReadRequestReportsTheEndOfAConnection(t *testing.T) {
	if _, err := ReadRequest(reader(""), 1024); err != io.EOF {
		t.Errorf("empty connection: %v, want io.EOF", err)
	}
	if _, err := ReadRequest(reader("GET /a HTTP/1.1\r\nHost"), 1024); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut inside the header: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestReadBodyReadsLengthAndChunksAndLeavesTheNextRequest(t *testing.T) {
	for _, c := range []struct {
		name, in, body string
	}{
		{"length", "PUT /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", "hello"},
		{"chunks, extension, trailer", "PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nX-T: 1\r\n\r\n", "hello"},
		{"no body", "GET /a HTTP/1.1\r\n\r\n", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := reader(c.in + "GET /next HTTP/1.1\r\n\r\n")
			req, err := ReadRequest(r, 1024)
			if err != nil {
				t.Fatal(err)
			}
			body, err := req.ReadBody(r, 100)
			if err != nil || string(body) != c.body {
				t.Fatalf("body %q, %v; want %q", body, err, c.body)
			}
			next, err := ReadRequest(r, 1024)
			if err != nil || next.Path != "/next" {
				t.Fatalf("next request: %+v, %v", next, err)
			}
		})
	}
}

func TestReadBodyOverTheLimit(t *testing.T) {
	// A chunked body over the limit is read to its end, so that the next
	// request (or the client's wait for its reply) is not stuck behind it.
	r := reader("PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n")
	req, _ := ReadRequest(r, 1024)
	if _, err := req.ReadBody(r, 10); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("chunked: %v, want ErrBodyTooLarge", err)
	}
	if next, err := ReadRequest(r, 1024); err != nil || next.Path != "/next" {
		t.Fatalf("after the drained body: %+v, %v", next, err)
	}
	// A body of known length over the limit is not read at all.
	r = reader("PUT /a HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world")
	req, _ = ReadRequest(r, 1024)
	if _, err := req.ReadBody(r, 10); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("length: %v, want ErrBodyTooLarge", err)
	}
	// A body cut short is an error, not a short body.
	r = reader("PUT /a HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello")
	req, _ = ReadRequest(r, 1024)
	if _, err := req.ReadBody(r, 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut body: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestReadReplyReadsEveryFraming(t *testing.T) {
	for _, c := range []struct {
		name, method, in string
		status           int
		body             string
		close            bool
	}{
		{"length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 200, "{}", false},
		{"no content", "PUT", "HTTP/1.1 204 No Content\r\nContent-Type: application/json\r\n\r\n", 204, "", false},
		{"interim reply skipped", "PUT", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, "x", false},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", 200, "x", false},
		{"to the end", "GET", "HTTP/1.0 500 Oops\r\n\r\n[\"bad\"]", 500, `["bad"]`, true},
		{"close", "GET", "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 404, "", true},
		{"head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", 200, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep, err := ReadReply(reader(c.in), c.method, 100)
			if err != nil || rep.Status != c.status || string(rep.Body) != c.body || rep.Close != c.close {
				t.Fatalf("got %+v, %v", rep, err)
			}
		})
	}
	if _, err := ReadReply(reader("SSH-2.0-x\r\n\r\n"), "GET", 100); err == nil {
		t.Error("not a status line: no error")
	}
}

func TestAppendReplyAndRequestAreReadBack(t *testing.T) {
	wire := AppendRequest(nil, MethodPut, "/api/v1/vm.resize", []Field{{"Host", "localhost"}}, []byte(`{"desired_vcpus":2}`))
	r := reader(string(wire))
	req, err := ReadRequest(r, 1024)
	if err != nil {
		t.Fatal(err)
	}
	body, err := req.ReadBody(r, 100)
	if err != nil || req.Method != "PUT" || req.Path != "/api/v1/vm.resize" || string(body) != `{"desired_vcpus":2}` || req.Header.Get("HOST") != "localhost" {
		t.Fatalf("%+v %q %v", req, body, err)
	}
	for _, status := range []int{200, 204, 404, 999} {
		wire := AppendReply(nil, status, []Field{{"Content-Type", "application/json"}}, []byte(`["x"]`))
		rep, err := ReadReply(reader(string(wire)), "GET", 100)
		want := `["x"]`
		if status == 204 {
			want = ""
		}
		if err != nil || rep.Status != status || string(rep.Body) != want {
			t.Errorf("status %d: %+v %v", status, rep, err)
		}
	}
}

// FuzzReadRequest feeds arbitrary bytes to the request reader: it never
// panics, refuses with a status it can name, and a request it accepts has
// a method that is a token and a path that starts with "/".
//
//	go test -run='^$' -fuzz=FuzzReadRequest -fuzztime=10s ./vm/api/http1
func FuzzReadRequest(f *testing.F) {
	for _, seed := range []string{
		"GET /api/v1/vmm.ping HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"PUT /api/v1/vm.resize HTTP/1.1\r\nContent-Length: 19\r\n\r\n{\"desired_vcpus\":2}",
		"PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
		"GET /a%2 HTTP/1.0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(strings.NewReader(string(in)), 16)
		req, err := ReadRequest(r, 512)
		var e *Error
		switch {
		case errors.As(err, &e):
			if StatusText(e.Status) == "" {
				t.Fatalf("refused with unnamed status %d", e.Status)
			}
			return
		case err != nil:
			return
		}
		if !isToken(req.Method) || !strings.HasPrefix(req.Path, "/") {
			t.Fatalf("accepted %+v", req)
		}
		body, err := req.ReadBody(r, 256)
		if err == nil && int64(len(body)) > 256 {
			t.Fatalf("body of %d bytes over the limit", len(body))
		}
	})
}
