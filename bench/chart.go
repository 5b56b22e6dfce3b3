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
)

// Chart geometry, in pixels.
const (
	chartHeight   = 360 // whole image
	chartLeft     = 88  // left of the plot: y-axis labels up to "1/1024" at glyph scale 2
	chartRight    = 16  // right of the plot
	chartTop      = 48  // above the plot: the legend
	chartBottom   = 40  // below the plot: group numbers
	chartGroup    = 80  // width of one metric's group of bars
	chartBar      = 26  // width of one bar
	chartBarGap   = 6   // between a group's two bars
	chartMinWidth = 320 // room for the legend with no groups
	chartCap      = 12  // width of a whisker's end caps

	glyphScale = 2 // the 5x7 glyphs are drawn this many pixels per dot
	glyphW     = 5
	glyphH     = 7

	// chartMaxExp bounds the log2 scale to 1/1024 .. 1024; values beyond
	// are clipped to the edge.
	chartMaxExp = 10
)

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
	return chartSize(len(chartedMetrics(r.Measurements)))
}

// chartSize is the size of a chart of groups metrics.
func chartSize(groups int) image.Point {
	w := chartLeft + groups*chartGroup + chartRight
	return image.Pt(max(w, chartMinWidth), chartHeight)
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

// WritePNG draws the chart as a PNG to w: per metric (those that
// [Report.WriteChartKey] lists, numbered under the groups), a bar for vmm's
// and for qemu's median divided by qemu's median, on a log2 scale with a
// labelled grid line at each power of 2, and whiskers from min to max where
// they differ. A
// legend of coloured boxes names the VMMs.
func (r Report) WritePNG(w io.Writer) error {
	charted := chartedMetrics(r.Measurements)
	size := chartSize(len(charted))
	img := image.NewRGBA(image.Rectangle{Max: size})
	fill(img, img.Bounds(), colourBackground)

	// Scale: whole powers of 2 around every ratio shown, bars rising from
	// the lowest.
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
				lo = min(lo, int(math.Ceil(e))-1) // strictly below: every bar has height
				hi = max(hi, int(math.Ceil(e)))
			}
		}
	}
	lo, hi = max(lo, -chartMaxExp), min(hi, chartMaxExp)
	plotTop, plotBottom := chartTop, size.Y-chartBottom
	y := func(ratio float64) int {
		if ratio <= 0 {
			return plotBottom
		}
		e := math.Max(float64(lo), math.Min(float64(hi), math.Log2(ratio)))
		return plotBottom - int(math.Round((e-float64(lo))/float64(hi-lo)*float64(plotBottom-plotTop)))
	}

	// Grid and its labels; labels are thinned out so that they do not
	// overlap.
	step := 1
	for (plotBottom-plotTop)*step/(hi-lo) < glyphH*glyphScale+6 {
		step++
	}
	for e := lo; e <= hi; e++ {
		gy := y(math.Exp2(float64(e)))
		c, thick := uint32(colourGrid), 1
		if e == 0 {
			c, thick = colourUnity, 2
		}
		fill(img, image.Rect(chartLeft-4, gy, size.X-chartRight, gy+thick), c)
		if (e-lo)%step == 0 || e == 0 {
			label := powerLabel(e)
			drawText(img, chartLeft-8-textWidth(label), gy-glyphH*glyphScale/2, label, colourInk)
		}
	}
	fill(img, image.Rect(chartLeft-4, plotTop, chartLeft-3, plotBottom+1), colourInk)

	// Bars and whiskers.
	for i, m := range charted {
		q, _ := m.Stats(QEMU)
		x := chartLeft + i*chartGroup + (chartGroup-2*chartBar-chartBarGap)/2
		for j, vmm := range vmmOrder() {
			s, _ := m.Stats(vmm)
			bx := x + j*(chartBar+chartBarGap)
			fill(img, image.Rect(bx, y(s.Median/q.Median), bx+chartBar, plotBottom), barColour(vmm))
			if s.Min == s.Max {
				continue // no spread to show
			}
			cx := bx + chartBar/2
			yMax, yMin := y(s.Max/q.Median), y(s.Min/q.Median)
			fill(img, image.Rect(cx-1, yMax, cx+1, yMin+1), colourInk)
			fill(img, image.Rect(cx-chartCap/2, yMax, cx+chartCap/2, yMax+2), colourInk)
			fill(img, image.Rect(cx-chartCap/2, yMin-1, cx+chartCap/2, yMin+1), colourInk)
		}
		label := strconv.Itoa(i + 1)
		drawText(img, chartLeft+i*chartGroup+(chartGroup-textWidth(label))/2, plotBottom+10, label, colourInk)
	}

	// Legend.
	lx := chartLeft
	for _, vmm := range vmmOrder() {
		box := glyphH * glyphScale
		fill(img, image.Rect(lx, 16, lx+box, 16+box), barColour(vmm))
		drawText(img, lx+box+8, 16, vmm, colourInk)
		lx += box + 8 + textWidth(vmm) + 24
	}

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
	n := len([]rune(s))
	if n == 0 {
		return 0
	}
	return (n*(glyphW+1) - 1) * glyphScale
}

// drawText draws s with its top left corner at (x, y), in the few glyphs
// the chart needs; other characters are left blank.
func drawText(img draw.Image, x, y int, s string, c uint32) {
	for _, r := range s {
		rows, _ := glyph(r)
		for gy, row := range rows {
			for gx := range glyphW {
				if row&(1<<(glyphW-1-gx)) != 0 {
					px, py := x+gx*glyphScale, y+gy*glyphScale
					fill(img, image.Rect(px, py, px+glyphScale, py+glyphScale), c)
				}
			}
		}
		x += (glyphW + 1) * glyphScale
	}
}

// glyph returns the 5x7 dot pattern of r, one row per byte with the
// leftmost dot in bit 4; ok is false for characters the chart never draws.
func glyph(r rune) (rows [glyphH]uint8, ok bool) {
	switch r {
	case '0':
		return [glyphH]uint8{0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110}, true
	case '1':
		return [glyphH]uint8{0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110}, true
	case '2':
		return [glyphH]uint8{0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111}, true
	case '3':
		return [glyphH]uint8{0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110}, true
	case '4':
		return [glyphH]uint8{0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010}, true
	case '5':
		return [glyphH]uint8{0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110}, true
	case '6':
		return [glyphH]uint8{0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110}, true
	case '7':
		return [glyphH]uint8{0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000}, true
	case '8':
		return [glyphH]uint8{0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110}, true
	case '9':
		return [glyphH]uint8{0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100}, true
	case '/':
		return [glyphH]uint8{0b00001, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b10000}, true
	case 'e':
		return [glyphH]uint8{0, 0, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110}, true
	case 'm':
		return [glyphH]uint8{0, 0, 0b11010, 0b10101, 0b10101, 0b10001, 0b10001}, true
	case 'q':
		return [glyphH]uint8{0, 0, 0b01101, 0b10011, 0b10001, 0b01111, 0b00001}, true
	case 'u':
		return [glyphH]uint8{0, 0, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101}, true
	case 'v':
		return [glyphH]uint8{0, 0, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100}, true
	}
	return [glyphH]uint8{}, false
}
