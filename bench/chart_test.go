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
	tests := []struct {
		name string
		ms   []Measurement
		want image.Point
	}{
		{name: "no metrics: legend only", ms: nil, want: image.Pt(chartMinWidth, 360)},
		{name: "vmm-only metric is not charted", ms: []Measurement{{Metric: "m", Unit: "ms", Samples: map[string][]float64{VMM: {1}}}}, want: image.Pt(320, 360)},
		{name: "one metric", ms: []Measurement{both("boot", f(7000, 6900), f(7400))}, want: image.Pt(320, 360)},
		{
			name: "four metrics, one beyond the scale, one negative",
			ms: []Measurement{
				both("boot", f(7000, 14000), f(13000)),
				both("far", f(1e9), f(1)),
				both("negative", f(-5, 3), f(10)),
				both("zero vmm", f(0), f(3)),
			},
			want: image.Pt(88+4*80+16, 360),
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
	// Just above the baseline, at the middle of each bar of group 1.
	y := 360 - chartBottom - 2
	x := chartLeft + (chartGroup-2*chartBar-chartBarGap)/2 + chartBar/4
	for _, tt := range []struct {
		x      int
		colour uint32
	}{{x, colourVMM}, {x + chartBar + chartBarGap, colourQEMU}} {
		r, g, bl, _ := img.At(tt.x, y).RGBA()
		got := uint32(r>>8)<<16 | uint32(g>>8)<<8 | uint32(bl>>8)
		if got != tt.colour {
			t.Errorf("pixel (%d,%d) = %06x, want %06x", tt.x, y, got, tt.colour)
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

func TestGlyphsCoverEveryLabelCharacter(t *testing.T) {
	for _, r := range "0123456789/vmmqemu" {
		if _, ok := glyph(r); !ok {
			t.Errorf("no glyph for %q", r)
		}
	}
}
