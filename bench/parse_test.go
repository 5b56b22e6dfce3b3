package bench

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseLogCollectsBenchdataLinesAndIgnoresTheRest(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want []Sample
	}{
		{name: "empty log", log: "", want: nil},
		{name: "no data lines", log: "booting\nBENCH run vmm 12 ms\n", want: nil},
		{
			name: "bare line",
			log:  `BENCHDATA {"metric":"boot: process start to ready marker","unit":"ms","vmm":"qemu","value":13968}` + "\n",
			want: []Sample{{Metric: "boot: process start to ready marker", Unit: "ms", VMM: "qemu", Value: 13968}},
		},
		{
			name: "text before the prefix, CRLF, tab, fraction, no final newline",
			log: "[12.5s]   BENCHDATA {\"metric\":\"api: ping p50\",\"unit\":\"ms\",\"vmm\":\"vmm\",\"value\":0.35}\r\n" +
				"noise\n" +
				"  BENCHDATA\t{\"value\":2, \"vmm\":\"qemu\", \"unit\":\"ms\", \"metric\":\"api: ping p50\"}  ",
			want: []Sample{
				{Metric: "api: ping p50", Unit: "ms", VMM: "vmm", Value: 0.35},
				{Metric: "api: ping p50", Unit: "ms", VMM: "qemu", Value: 2},
			},
		},
		{
			name: "prefix not followed by an object is not a data line",
			log:  "no BENCHDATA lines found\nBENCHDATAX {}\nBENCHDATA: 12\n",
			want: nil,
		},
		{
			name: "a later prefix on the line counts",
			log:  `say BENCHDATA then BENCHDATA {"metric":"m","unit":"ms","vmm":"vmm","value":-1.5}` + "\n",
			want: []Sample{{Metric: "m", Unit: "ms", VMM: "vmm", Value: -1.5}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLog(strings.NewReader(tt.log))
			if err != nil {
				t.Fatalf("ParseLog: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d samples %+v, want %d %+v", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("sample %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseLogRejectsMalformedDataLines(t *testing.T) {
	tests := []struct {
		name string
		line string
		want string // in the error
	}{
		{"bad JSON", `BENCHDATA {"metric":"m",`, "bad JSON"},
		{"missing value", `BENCHDATA {"metric":"m","unit":"ms","vmm":"vmm"}`, "missing field(s) value"},
		{"missing several", `BENCHDATA {"value":1}`, "missing field(s) metric, unit, vmm"},
		{"unknown field", `BENCHDATA {"metric":"m","unit":"ms","vmm":"vmm","value":1,"vaule":2}`, "unknown field"},
		{"unknown vmm", `BENCHDATA {"metric":"m","unit":"ms","vmm":"firecracker","value":1}`, `unknown vmm "firecracker"`},
		{"empty metric", `BENCHDATA {"metric":" ","unit":"ms","vmm":"vmm","value":1}`, "empty metric"},
		{"comma in metric", `BENCHDATA {"metric":"a,b","unit":"ms","vmm":"vmm","value":1}`, "contains ','"},
		{"empty unit", `BENCHDATA {"metric":"m","unit":"","vmm":"vmm","value":1}`, "empty unit"},
		{"string value", `BENCHDATA {"metric":"m","unit":"ms","vmm":"vmm","value":"1"}`, "bad JSON"},
		{"NaN value", `BENCHDATA {"metric":"m","unit":"ms","vmm":"vmm","value":NaN}`, "bad JSON"},
		{"trailing text", `BENCHDATA {"metric":"m","unit":"ms","vmm":"vmm","value":1} and more`, `unexpected "and more"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := "ok\n" + `BENCHDATA {"metric":"m","unit":"ms","vmm":"qemu","value":3}` + "\n" + tt.line + "\n"
			got, err := ParseLog(strings.NewReader(log))
			if err == nil {
				t.Fatalf("ParseLog = %+v, want an error", got)
			}
			if !strings.Contains(err.Error(), "line 3: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to name line 3 and say %q", err, tt.want)
			}
			if got != nil {
				t.Errorf("samples %+v returned with the error", got)
			}
		})
	}
}

func TestParseLogReportsEveryMalformedLine(t *testing.T) {
	log := "BENCHDATA {\nfine\nBENCHDATA {\"value\":1}\n"
	_, err := ParseLog(strings.NewReader(log))
	if err == nil || !strings.Contains(err.Error(), "line 1: ") || !strings.Contains(err.Error(), "line 3: ") {
		t.Errorf("error %v, want lines 1 and 3 named", err)
	}
}

func TestParseLogWrapsReadErrors(t *testing.T) {
	boom := errors.New("boom")
	_, err := ParseLog(iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want it to wrap %v", err, boom)
	}
}

func TestParseLogReadsLongLines(t *testing.T) {
	long := strings.Repeat("x", 1<<20) + ` BENCHDATA {"metric":"m","unit":"ms","vmm":"vmm","value":7}` + "\n"
	got, err := ParseLog(strings.NewReader(long))
	if err != nil || len(got) != 1 || got[0].Value != 7 {
		t.Errorf("ParseLog = %+v, %v; want one sample of 7", got, err)
	}
}

func TestSampleLineRoundTrips(t *testing.T) {
	tests := []Sample{
		{Metric: "boot: process start to ready marker", Unit: "ms", VMM: QEMU, Value: 13968},
		{Metric: `memory hot add: 2 GiB <request> to "MemTotal" & more | x`, Unit: "MiB", VMM: VMM, Value: 0.125},
		{Metric: "big", Unit: "B", VMM: VMM, Value: 1.5e21},
		{Metric: "negative", Unit: "KiB", VMM: VMM, Value: -42},
	}
	for _, s := range tests {
		t.Run(s.Metric, func(t *testing.T) {
			line := s.Line()
			if !strings.HasPrefix(line, Prefix+" {") || strings.Contains(line, "\n") {
				t.Fatalf("Line() = %q, want one line starting %q", line, Prefix+" {")
			}
			got, err := ParseLog(strings.NewReader("console: " + line + "\r\n"))
			if err != nil || len(got) != 1 || got[0] != s {
				t.Errorf("ParseLog(%q) = %+v, %v; want %+v", line, got, err, s)
			}
		})
	}
}

func TestSampleLineMatchesTheDocumentedFormat(t *testing.T) {
	s := Sample{Metric: "boot: process start to ready marker", Unit: "ms", VMM: QEMU, Value: 13968}
	want := `BENCHDATA {"metric":"boot: process start to ready marker","unit":"ms","vmm":"qemu","value":13968}`
	if got := s.Line(); got != want {
		t.Errorf("Line() = %s\nwant     %s", got, want)
	}
}
