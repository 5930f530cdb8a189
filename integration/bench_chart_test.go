//go:build bench

package integration

import (
	"fmt"
	"image/color"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chartStyle is how a system looks in the chart: its name on the axis
// and its bar colour (blues for cloudmount, warm colours for the peers,
// greys for the limits).
var chartStyle = map[string]struct {
	name  string
	color color.RGBA
}{
	"cloudmount-apache": {"cloudmount · Apache", color.RGBA{0x1f, 0x4e, 0x9d, 0xff}},
	"cloudmount-rclone": {"cloudmount · rclone", color.RGBA{0x5b, 0x8f, 0xd6, 0xff}},
	"cloudmount-sftp":   {"cloudmount · sshd", color.RGBA{0x1b, 0x9a, 0xaa, 0xff}},
	"davfs2":            {"davfs2", color.RGBA{0xd9, 0x5f, 0x02, 0xff}},
	"rclone-full":       {"rclone mount full", color.RGBA{0xc0, 0x2a, 0x6e, 0xff}},
	"rclone-writes":     {"rclone mount writes", color.RGBA{0xe8, 0x8a, 0xb4, 0xff}},
	"rclone-sftp":       {"rclone mount · sshd", color.RGBA{0x7b, 0x3f, 0x9e, 0xff}},
	"sshfs":             {"sshfs", color.RGBA{0x8c, 0x6d, 0x1f, 0xff}},
	"local":             {"local disk", color.RGBA{0x44, 0x44, 0x44, 0xff}},
	"curl-apache":       {"curl · Apache", color.RGBA{0x80, 0x80, 0x80, 0xff}},
	"curl-rclone":       {"curl · rclone", color.RGBA{0xa8, 0xa8, 0xa8, 0xff}},
	"sftp":              {"sftp/scp", color.RGBA{0xc4, 0xc4, 0xc4, 0xff}},
}

// chartPanels are the measurements the chart shows, one panel each.
var chartPanels = []struct{ metric, title string }{
	{"write.close", "1. write %s: until close"},
	{"write.server", "1. write %s: until on the server"},
	{"read.cold", "2. read %s: cold"},
	{"read.warm", "2. read %s: warm"},
	{"small.close", "3. small files: until the last close"},
	{"small.server", "3. small files: until on the server"},
	{"ls.cold", "4. ls -lR: cold"},
	{"ls.warm", "4. ls -lR: warm"},
	{"rsync.first", "5. rsync: first run"},
	{"rsync.second", "5. rsync: second run"},
	{"rsync.remount", "5. rsync: after remount"},
	{"rss", "6. daemon peak RSS"},
}

// writeBenchChart draws the medians as a grid of horizontal bar charts.
func writeBenchChart(res *benchResults, name string) error {
	const cols, rows = 4, 3
	var grid [][]*plot.Plot
	for r := 0; r < rows; r++ {
		var row []*plot.Plot
		for c := 0; c < cols; c++ {
			p, err := chartPanel(res, r*cols+c)
			if err != nil {
				return err
			}
			row = append(row, p)
		}
		grid = append(grid, row)
	}
	width, height := 15*vg.Inch, 10*vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(120))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	header := vg.Points(46)
	title := text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, 15), Handler: plot.DefaultTextHandler}
	sub := title
	sub.Font = font.From(plot.DefaultFont, 10)
	dc.FillText(title, vg.Point{X: vg.Points(12), Y: height - vg.Points(20)},
		fmt.Sprintf("cloudmount next to davfs2, sshfs and rclone mount — medians of %d runs, %s sizes, %s (lower is better)", res.Reps, res.Sizes.Name, res.Date))
	dc.FillText(sub, vg.Point{X: vg.Points(12), Y: height - vg.Points(38)},
		"blue: cloudmount · warm colours: peers on the same servers · grey: limits (local disk, curl, sftp/scp) · missing bar: not applicable or not available")

	body := draw.Crop(dc, 0, 0, 0, -header)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(14), PadY: vg.Points(14), PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(10)}
	canvases := plot.Align(grid, tiles, body)
	for r := range grid {
		for c := range grid[r] {
			grid[r][c].Draw(canvases[r][c])
		}
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// chartPanel is panel i: one bar per system that has the figure.
func chartPanel(res *benchResults, i int) (*plot.Plot, error) {
	p := plot.New()
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.X.Label.TextStyle.Font.Size = vg.Points(9)
	p.X.Tick.Label.Font.Size = vg.Points(8)
	p.Y.Tick.Label.Font.Size = vg.Points(9)
	if i >= len(chartPanels) {
		p.HideAxes()
		return p, nil
	}
	panel := chartPanels[i]
	p.Title.Text = panel.title
	if strings.Contains(panel.title, "%s") {
		p.Title.Text = fmt.Sprintf(panel.title, sizeLabel(res.Sizes.BigFile))
	}
	unit := "seconds"
	if panel.metric == "rss" {
		unit = "MiB"
	}
	p.X.Label.Text = unit

	type bar struct {
		id, name string
		v        float64
		c        color.RGBA
	}
	var bars []bar
	for _, s := range res.Systems {
		st, ok := chartStyle[s.ID]
		if !ok {
			continue
		}
		v, ok := res.median(s.ID, panel.metric)
		if panel.metric == "rss" {
			v, ok = 0, false
			for _, w := range benchWorkloadNames {
				if x, found := res.median(s.ID, "rss."+w); found {
					v, ok = max(v, x), true
				}
			}
		}
		if ok {
			bars = append(bars, bar{s.ID, st.name, v, st.color})
		}
	}
	if len(bars) == 0 {
		p.HideAxes()
		return p, nil
	}
	n := len(bars)
	names := make([]string, n)
	var xys plotter.XYs
	var labels []string
	top := 0.0
	for j, b := range bars {
		y := float64(n - 1 - j) // the first system on top
		bc, err := plotter.NewBarChart(plotter.Values{b.v}, vg.Points(9))
		if err != nil {
			return nil, err
		}
		bc.Horizontal = true
		bc.XMin = y
		bc.Color = b.c
		bc.LineStyle.Width = 0
		p.Add(bc)
		names[n-1-j] = b.name
		xys = append(xys, plotter.XY{X: b.v, Y: y})
		metric := panel.metric
		if metric == "rss" {
			metric = "rss.all"
		}
		label := formatValue(metric, b.v)
		if files, ok := res.median(b.id, panel.metric+".files"); ok && strings.HasPrefix(panel.metric, "rsync.") && panel.metric != "rsync.first" {
			label += fmt.Sprintf("  (%.0f files)", files)
		}
		labels = append(labels, label)
		top = max(top, b.v)
	}
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return nil, err
	}
	for j := range lb.TextStyle {
		lb.TextStyle[j].Font.Size = vg.Points(8)
		lb.TextStyle[j].YAlign = text.YCenter
	}
	lb.Offset = vg.Point{X: vg.Points(3)}
	p.Add(lb)
	p.NominalY(names...)
	p.X.Min = 0
	p.X.Max = max(top*1.45, 1e-3)
	if panel.metric == "rss" {
		// The target: under 64 MiB in every workload.
		p.X.Max = max(p.X.Max, rssLimitMiB*1.2)
		line, err := plotter.NewLine(plotter.XYs{{X: rssLimitMiB, Y: -0.5}, {X: rssLimitMiB, Y: float64(n) - 0.5}})
		if err != nil {
			return nil, err
		}
		line.Color = color.RGBA{0xcc, 0, 0, 0xff}
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(line)
		p.Title.Text += fmt.Sprintf(", target < %d MiB", rssLimitMiB)
	}
	return p, nil
}
