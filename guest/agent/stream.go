package agent

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
)

// Pattern is n bytes of a pseudo-random stream fixed by seed: what the
// transfer specs send, so that both ends can check what arrived.
func Pattern(seed uint64, n int64) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return io.LimitReader(rand.NewChaCha8(key), n)
}

// Summer counts and hashes what is written to it.
type Summer struct {
	n int64
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
}

// NewSummer returns an empty Summer.
func NewSummer() *Summer { return &Summer{h: sha256.New()} }

// Write implements io.Writer.
func (s *Summer) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	return s.h.Write(p)
}

// N is how many bytes were written.
func (s *Summer) N() int64 { return s.n }

// String is the count and the SHA-256 as the transfer commands print
// them: "bytes=N sha256=HEX".
func (s *Summer) String() string {
	return fmt.Sprintf("bytes=%d sha256=%s", s.n, hex.EncodeToString(s.h.Sum(nil)))
}

// PatternSum is what a Summer says of Pattern(seed, n).
func PatternSum(seed uint64, n int64) string {
	s := NewSummer()
	_, _ = io.Copy(s, Pattern(seed, n))
	return s.String()
}
