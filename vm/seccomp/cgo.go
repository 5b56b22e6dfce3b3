//go:build cgo

package seccomp

// withCgo: this vmm is built with cgo, so glibc creates its threads.
const withCgo = true
