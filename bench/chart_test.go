package bench

import (
	"bytes"
	"image"
	"image/png"
	"testing"
)

func TestWritePNGDecodesWithTheExpectedSize(t *testing.T) {
	both := func(metric string, vmm, qemu []float64) Measurement {
		return Measurement{Metric: metric, Unit: "ms", Samples: map[string][]float64{VMM: vmm, QEMU: qemu}}
	}
	f := func(v ...float64) []float64 { return v }
	// Rows of 34 px between 40 px above and 36 below; a column of names
	// at least 120 px wide (7 px a character) left of the 560 px plot.
	width := func(label string) int { return 8 + max(120, 7*len(label)) + 12 + 560 + 24 }
	tests := []struct {
		name string
		ms   []Measurement
		want image.Point
	}{
		{name: "no metrics: legend only", ms: nil, want: image.Pt(width(""), 40+34+36)},
		{name: "vmm-only metric is not charted", ms: []Measurement{{Metric: "m", Unit: "ms", Samples: map[string][]float64{VMM: {1}}}}, want: image.Pt(width(""), 110)},
		{name: "one metric", ms: []Measurement{both("boot", f(7000, 6900), f(7400))}, want: image.Pt(width(""), 110)},
		{
			name: "four metrics, one beyond the scale, one negative, one with a long name",
			ms: []Measurement{
				both("boot", f(7000, 14000), f(13000)),
				both("far", f(1e9), f(1)),
				both("negative", f(-5, 3), f(10)),
				both("zero vmm and a name longer than the narrowest column", f(0), f(3)),
			},
			want: image.Pt(width("zero vmm and a name longer than the narrowest column (ms)"), 40+4*34+36),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Report{Measurements: tt.ms}
			var b bytes.Buffer
			if err := r.WritePNG(&b); err != nil {
				t.Fatalf("WritePNG: %v", err)
			}
			img, err := png.Decode(&b)
			if err != nil {
				t.Fatalf("PNG does not decode: %v", err)
			}
			if got := img.Bounds().Size(); got != tt.want || r.ChartSize() != tt.want {
				t.Errorf("size %v (ChartSize %v), want %v", got, r.ChartSize(), tt.want)
			}
		})
	}
}

func TestWritePNGDrawsBarsInTheVMMColours(t *testing.T) {
	r := Report{Measurements: []Measurement{{Metric: "boot", Unit: "ms", Samples: map[string][]float64{VMM: {5000}, QEMU: {10000}}}}}
	var b bytes.Buffer
	if err := r.WritePNG(&b); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	// Near the start of each bar of row 1, in its middle.
	x := 8 + 120 + 12 + 2
	y := 40 + (34-2*12-2)/2 + 12/2
	for _, tt := range []struct {
		x      int
		colour uint32
		y      int
	}{{x, colourVMM, y}, {x, colourQEMU, y + 12 + 2}} {
		r, g, bl, _ := img.At(tt.x, tt.y).RGBA()
		got := uint32(r>>8)<<16 | uint32(g>>8)<<8 | uint32(bl>>8)
		if got != tt.colour {
			t.Errorf("pixel (%d,%d) = %06x, want %06x", tt.x, tt.y, got, tt.colour)
		}
	}
}

func TestPowerLabel(t *testing.T) {
	for e, want := range map[int]string{0: "1", 1: "2", 10: "1024", -1: "1/2", -10: "1/1024"} {
		if got := powerLabel(e); got != want {
			t.Errorf("powerLabel(%d) = %q, want %q", e, got, want)
		}
	}
}

func TestChartNamesEveryMetricOnItsAxis(t *testing.T) {
	// The name column is as wide as the longest name, so that each row's
	// name is drawn whole left of the plot.
	short := Measurement{Metric: "a", Unit: "ms", Samples: map[string][]float64{VMM: {1}, QEMU: {1}}}
	long := Measurement{Metric: "memory hot add 2G: request to MemTotal grown", Unit: "ms", Samples: map[string][]float64{VMM: {1}, QEMU: {1}}}
	if got, want := labelColumn([]Measurement{short, long}), textWidth(chartLabel(long)); got != want {
		t.Errorf("label column %d px, want %d (the longest name)", got, want)
	}
	r := Report{Measurements: []Measurement{short, long}}
	var b bytes.Buffer
	if err := r.WritePNG(&b); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	// Ink in the name column of row 2.
	inked := false
	for x := 8; x < 8+labelColumn(r.Measurements) && !inked; x++ {
		for y := 40 + 34; y < 40+2*34; y++ {
			if rr, _, _, _ := img.At(x, y).RGBA(); rr>>8 == 0x28 {
				inked = true
				break
			}
		}
	}
	if !inked {
		t.Error("no text in the second row's name column")
	}
}
