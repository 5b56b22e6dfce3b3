package config

import (
	"strings"
	"testing"
)

func TestParseVsock(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Vsock
		err  string
	}{
		{"cid=3,socket=/tmp/v.sock", Vsock{CID: 3, Socket: "/tmp/v.sock"}, ""},
		{"cid=4294967294,socket=/s,id=vs0,pci_segment=1", Vsock{CID: 4294967294, Socket: "/s", PCIDevice: PCIDevice{ID: "vs0", PCISegment: 1}}, ""},
		{"cid=3,socket=/s,iommu=off", Vsock{CID: 3, Socket: "/s"}, ""},
		{"cid=0,socket=/s", Vsock{}, "0 is a special VSOCK CID"},
		{"cid=1,socket=/s", Vsock{}, "1 is a special VSOCK CID"},
		{"cid=2,socket=/s", Vsock{}, "2 is a special VSOCK CID"},
		{"cid=4294967295,socket=/s", Vsock{}, "4294967295 is a special VSOCK CID"},
		{"cid=4294967296,socket=/s", Vsock{}, "not a number"},
		{"cid=x,socket=/s", Vsock{}, "not a number"},
		{"socket=/s", Vsock{}, "cid= is required"},
		{"cid=3", Vsock{}, "socket= is required"},
		{"cid=3,socket=/s,iommu=on", Vsock{PCIDevice: PCIDevice{IOMMU: true}, CID: 3, Socket: "/s"}, ""}, // refused by the support table
		{"cid=3,socket=/s,pci_segment=x", Vsock{}, "pci_segment"},
		{"cid=3,socket=/s,port=1", Vsock{}, "Unknown option: port"},
	} {
		got, err := ParseVsock(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseVsock(%q) error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseVsock(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		back, err := ParseVsock(got.Arg())
		if err != nil || back != got {
			t.Errorf("ParseVsock(%q) = %+v, %v: Arg does not parse back", got.Arg(), back, err)
		}
	}
}

func TestValidateChecksVsock(t *testing.T) {
	c := Default()
	c.Payload.Kernel = "/k"
	c.Vsock = &Vsock{CID: 2, Socket: "/s"}
	if err := c.Validate(0); err == nil || !strings.Contains(err.Error(), "special VSOCK CID") {
		t.Fatalf("Validate with cid 2: %v", err)
	}
	c.Vsock.CID = 3
	if err := c.Validate(0); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Args(), " "); !strings.Contains(got, "--vsock cid=3,socket=/s") {
		t.Fatalf("Args %q lack the vsock", got)
	}
}
