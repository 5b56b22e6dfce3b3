package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Chart geometry, in pixels. The chart has one row per metric, its name on
// the left (the y axis), and the ratios along the x axis.
const (
	chartPlot     = 560 // width of the plot
	chartRight    = 24  // right of the plot
	chartTop      = 40  // above the plot: the legend
	chartBottom   = 36  // below the plot: the scale's labels
	chartRow      = 34  // height of one metric's row
	chartBar      = 12  // height of one bar
	chartBarGap   = 2   // between a row's two bars
	chartLabelGap = 12  // between a metric's name and the plot
	chartMargin   = 8   // left of the names
	chartCap      = 8   // height of a whisker's end caps
	chartMinLabel = 120 // narrowest column of names
	chartMinRows  = 1   // a chart without metrics still has room for one row

	// chartMaxExp bounds the log2 scale to 1/1024 .. 1024; values beyond
	// are clipped to the edge.
	chartMaxExp = 10
)

// chartFace is the chart's font: a fixed 7x13 bitmap.
func chartFace() *basicfont.Face { return basicfont.Face7x13 }

// Chart colours, as 0xRRGGBB.
const (
	colourVMM        = 0x1f77b4 // blue
	colourQEMU       = 0xff7f0e // orange
	colourBackground = 0xffffff
	colourGrid       = 0xdddddd
	colourUnity      = 0x606060
	colourInk        = 0x282828
)

// rgb turns 0xRRGGBB into an opaque colour.
func rgb(c uint32) color.RGBA {
	return color.RGBA{R: uint8(c >> 16), G: uint8(c >> 8), B: uint8(c), A: 0xff}
}

// ChartSize is the size in pixels of the chart of r.
func (r Report) ChartSize() image.Point {
	charted := chartedMetrics(r.Measurements)
	return chartSize(len(charted), labelColumn(charted))
}

// chartSize is the size of a chart of rows metrics whose names take label
// pixels.
func chartSize(rows, label int) image.Point {
	return image.Pt(chartMargin+label+chartLabelGap+chartPlot+chartRight,
		chartTop+max(rows, chartMinRows)*chartRow+chartBottom)
}

// labelColumn is the width of the column of metric names.
func labelColumn(ms []Measurement) int {
	w := chartMinLabel
	for _, m := range ms {
		w = max(w, textWidth(chartLabel(m)))
	}
	return w
}

// chartLabel is the name of m's row: the metric and its unit.
func chartLabel(m Measurement) string {
	return m.Metric + " (" + m.Unit + ")"
}

// chartedMetrics are the metrics the chart shows: those with samples for
// both VMMs and a positive qemu median to scale by.
func chartedMetrics(ms []Measurement) []Measurement {
	var out []Measurement
	for _, m := range ms {
		_, okV := m.Stats(VMM)
		q, okQ := m.Stats(QEMU)
		if okV && okQ && q.Median > 0 {
			out = append(out, m)
		}
	}
	return out
}

// WritePNG draws the chart as a PNG to w: a row per metric (those that
// [Report.WriteChartKey] lists), named on the y axis, with a bar for vmm's
// and for qemu's median divided by qemu's median, on a log2 scale along the
// x axis with a labelled grid line at each power of 2, and whiskers from
// min to max where they differ. A legend of coloured boxes names the VMMs.
func (r Report) WritePNG(w io.Writer) error {
	charted := chartedMetrics(r.Measurements)
	label := labelColumn(charted)
	size := chartSize(len(charted), label)
	img := image.NewRGBA(image.Rectangle{Max: size})
	fill(img, img.Bounds(), colourBackground)

	// Scale: whole powers of 2 around every ratio shown, bars growing
	// from the lowest.
	lo, hi := -1, 1
	for _, m := range charted {
		q, _ := m.Stats(QEMU)
		for _, vmm := range vmmOrder() {
			s, _ := m.Stats(vmm)
			for _, v := range []float64{s.Min, s.Max, s.Median} {
				if v <= 0 {
					continue
				}
				e := math.Log2(v / q.Median)
				lo = min(lo, int(math.Ceil(e))-1) // strictly below: every bar has length
				hi = max(hi, int(math.Ceil(e)))
			}
		}
	}
	lo, hi = max(lo, -chartMaxExp), min(hi, chartMaxExp)
	plotLeft := chartMargin + label + chartLabelGap
	plotTop, plotBottom := chartTop, size.Y-chartBottom
	x := func(ratio float64) int {
		if ratio <= 0 {
			return plotLeft
		}
		e := math.Max(float64(lo), math.Min(float64(hi), math.Log2(ratio)))
		return plotLeft + int(math.Round((e-float64(lo))/float64(hi-lo)*float64(chartPlot)))
	}

	// Grid and its labels under the plot; labels are thinned out so that
	// they do not overlap.
	step := 1
	for chartPlot*step/(hi-lo) < textWidth("1/1024")+8 {
		step++
	}
	for e := lo; e <= hi; e++ {
		gx := x(math.Exp2(float64(e)))
		c, thick := uint32(colourGrid), 1
		if e == 0 {
			c, thick = colourUnity, 2
		}
		fill(img, image.Rect(gx, plotTop, gx+thick, plotBottom+4), c)
		if (e-lo)%step == 0 || e == 0 {
			l := powerLabel(e)
			drawText(img, gx-textWidth(l)/2, plotBottom+8, l, colourInk)
		}
	}
	fill(img, image.Rect(plotLeft-1, plotTop, plotLeft, plotBottom), colourInk)

	// Names, bars and whiskers.
	for i, m := range charted {
		q, _ := m.Stats(QEMU)
		top := plotTop + i*chartRow
		name := chartLabel(m)
		drawText(img, plotLeft-chartLabelGap-textWidth(name), top+(chartRow-textHeight())/2, name, colourInk)
		y0 := top + (chartRow-2*chartBar-chartBarGap)/2
		for j, vmm := range vmmOrder() {
			s, _ := m.Stats(vmm)
			by := y0 + j*(chartBar+chartBarGap)
			fill(img, image.Rect(plotLeft, by, x(s.Median/q.Median), by+chartBar), barColour(vmm))
			if s.Min == s.Max {
				continue // no spread to show
			}
			cy := by + chartBar/2
			xMin, xMax := x(s.Min/q.Median), x(s.Max/q.Median)
			fill(img, image.Rect(xMin, cy-1, xMax+1, cy+1), colourInk)
			fill(img, image.Rect(xMin, cy-chartCap/2, xMin+2, cy+chartCap/2), colourInk)
			fill(img, image.Rect(xMax-1, cy-chartCap/2, xMax+1, cy+chartCap/2), colourInk)
		}
	}

	// Legend, and what the axis shows.
	lx := plotLeft
	for _, vmm := range vmmOrder() {
		box := textHeight()
		fill(img, image.Rect(lx, 12, lx+box, 12+box), barColour(vmm))
		drawText(img, lx+box+6, 12, vmm, colourInk)
		lx += box + 6 + textWidth(vmm) + 24
	}
	drawText(img, lx, 12, "median / qemu's median, log2 scale", colourInk)

	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("write PNG chart: %w", err)
	}
	return nil
}

// barColour is the colour of vmm's bars and legend box.
func barColour(vmm string) uint32 {
	if vmm == QEMU {
		return colourQEMU
	}
	return colourVMM
}

// powerLabel names 2**e: "1", "2", "4", ..., or "1/2", "1/4", ... below 1.
func powerLabel(e int) string {
	if e >= 0 {
		return strconv.Itoa(1 << e)
	}
	return "1/" + strconv.Itoa(1<<-e)
}

// fill paints r in c (0xRRGGBB).
func fill(img draw.Image, r image.Rectangle, c uint32) {
	draw.Draw(img, r, image.NewUniform(rgb(c)), image.Point{}, draw.Src)
}

// textWidth is the width in pixels of s drawn by drawText.
func textWidth(s string) int {
	return font.MeasureString(chartFace(), s).Ceil()
}

// textHeight is the height in pixels of a line drawn by drawText.
func textHeight() int {
	return chartFace().Metrics().Height.Ceil()
}

// drawText draws s with its top left corner at (x, y).
func drawText(img draw.Image, x, y int, s string, c uint32) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(rgb(c)), Face: chartFace(),
		Dot: fixed.P(x, y+chartFace().Metrics().Ascent.Ceil())}
	d.DrawString(s)
}
