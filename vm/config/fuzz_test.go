package config

import (
	"encoding/json"
	"os"
	"testing"
)

// FuzzDecodeAndCheck feeds arbitrary vm.create bodies through what the VMM
// does with one: Decode, SetDefaults, Validate, CheckSupported. Whatever the
// bytes, nothing panics, and a body Decode takes comes out as JSON that
// decodes again to the same configuration.
//
//	go test -run='^$' -fuzz=FuzzDecodeAndCheck -fuzztime=10s ./vm/config
func FuzzDecodeAndCheck(f *testing.F) {
	if kata, err := os.ReadFile("../../e2e/testdata/kata-vm-create.json"); err == nil {
		f.Add(kata)
	}
	for _, seed := range []string{
		`{}`, `null`, `[]`, `{"cpus":null}`,
		`{"payload":{"kernel":"/k"},"disks":[{"path":"/d","id":"a"},{"path":"/e","id":"a"}]}`,
		`{"payload":{"kernel":"/k"},"cpus":{"max_vcpus":4,"topology":{"threads_per_core":0}}}`,
		`{"platform":{"num_pci_segments":99},"memory":{"zones":[{"id":"z","size":1}]}}`,
		`{"serial":{"mode":"Pty"},"console":{"mode":"Socket"},"rng":{"src":""}}`,
		`{"net":[{"fds":[3,4],"rate_limiter_config":{"bandwidth":{"size":1,"refill_time":1}}}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := Decode(body)
		if err != nil {
			return
		}
		_ = c.Validate(0)
		_ = c.CheckSupported()
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := Decode(data)
		if err != nil {
			t.Fatalf("vm.info's JSON does not decode again: %v\n%s", err, data)
		}
		if back, _ := json.Marshal(again); string(back) != string(data) {
			t.Fatalf("a second round trip changed the configuration:\n%s\n%s", data, back)
		}
	})
}
