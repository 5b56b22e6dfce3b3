package acpi

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/vmmdev/vmm/acpi/acpitest"
)

// mustHex decodes a golden written as hex with any white space.
func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad golden %q: %v", s, err)
	}
	return b
}

func TestAmlEncodingMatchesGoldenBytes(t *testing.T) {
	for _, c := range amlCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Encode(c.aml...)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, c.want); !bytes.Equal(got, want) {
				t.Errorf("got  % x\nwant % x", got, want)
			}
		})
	}
}

func TestAmlEncodingMatchesIASLCompiler(t *testing.T) {
	for _, c := range amlCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Encode(c.aml...)
			if err != nil {
				t.Fatal(err)
			}
			asl := "DefinitionBlock (\"\", \"DSDT\", 2, \"VMM   \", \"VMMDSDT \", 1)\n{\n" + c.asl + "\n}\n"
			tbl := acpitest.Compile(t, asl, "-on")
			if want := tbl[HeaderSize:]; !bytes.Equal(got, want) {
				t.Errorf("encoder and iasl differ\nencoder % x\niasl    % x", got, want)
			}
		})
	}
}
