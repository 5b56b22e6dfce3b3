package bench

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRequirements(t *testing.T) {
	both := []string{VMM, QEMU}
	tests := []struct {
		name    string
		list    string
		want    []Requirement
		wantErr string
	}{
		{name: "empty", list: "", want: nil},
		{name: "only separators", list: " , ,", want: nil},
		{name: "one metric needs both VMMs", list: "boot: ready", want: []Requirement{{"boot: ready", both}}},
		{
			name: "several, with VMMs and spaces",
			list: " boot: ready , boot: first KVM_RUN@vmm, rss @ qemu + vmm ",
			want: []Requirement{{"boot: ready", both}, {"boot: first KVM_RUN", []string{VMM}}, {"rss", []string{QEMU, VMM}}},
		},
		{
			name: "an escaped comma in a name",
			list: `boot: ready (vmlinux\, PVH),rss@vmm`,
			want: []Requirement{{"boot: ready (vmlinux, PVH)", both}, {"rss", []string{VMM}}},
		},
		{name: "unknown vmm", list: "boot@vmm+xen", wantErr: `unknown vmm "xen"`},
		{name: "empty vmm", list: "boot@", wantErr: `unknown vmm ""`},
		{name: "empty metric", list: "@vmm", wantErr: "empty metric"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequirements(tt.list)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseRequirements(%q) error %v, want %q", tt.list, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseRequirements(%q) = %+v, %v; want %+v", tt.list, got, err, tt.want)
			}
		})
	}
}

func TestCheckNamesEveryMissingMeasurement(t *testing.T) {
	ms := []Measurement{
		{Metric: "boot", Unit: "ms", Samples: map[string][]float64{VMM: {1}, QEMU: {2}}},
		{Metric: "first run", Unit: "ms", Samples: map[string][]float64{VMM: {1}}},
		{Metric: "hot add", Unit: "ms", Samples: map[string][]float64{QEMU: {3}}},
	}
	tests := []struct {
		name string
		reqs string
		want []Missing
	}{
		{name: "nothing required", reqs: "", want: nil},
		{name: "all present", reqs: "boot, first run@vmm, hot add@qemu", want: nil},
		{name: "one VMM lacking", reqs: "boot, first run", want: []Missing{{"first run", []string{QEMU}}}},
		{
			name: "several lacking, one metric absent",
			reqs: "hot add, memory 2 GiB, boot@vmm",
			want: []Missing{{"hot add", []string{VMM}}, {"memory 2 GiB", []string{VMM, QEMU}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs, err := ParseRequirements(tt.reqs)
			if err != nil {
				t.Fatal(err)
			}
			err = Check(ms, reqs)
			if tt.want == nil {
				if err != nil {
					t.Errorf("Check = %v, want nil", err)
				}
				return
			}
			var me *MissingError
			if !errors.As(err, &me) || !IsMissing(err) {
				t.Fatalf("Check = %v, want a *MissingError", err)
			}
			if !reflect.DeepEqual(me.Missing, tt.want) {
				t.Errorf("missing %+v, want %+v", me.Missing, tt.want)
			}
			for _, m := range tt.want {
				if !strings.Contains(err.Error(), `"`+m.Metric+`"`) {
					t.Errorf("error %q does not name %q", err, m.Metric)
				}
			}
		})
	}
}
