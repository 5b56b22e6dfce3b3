//go:build !cgo

package seccomp

// withCgo: this vmm is built without cgo; the Go runtime creates its
// threads with clone.
const withCgo = false
