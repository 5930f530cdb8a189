package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// formatSize writes a byte count for people: 512 B, 1.5 KiB, 12.0 MiB.
func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(n)/unit, 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// formatRate writes a transfer rate in bytes per second for people.
func formatRate(bps float64) string {
	return formatSize(int64(bps)) + "/s"
}

// formatAgo writes how long ago t was, coarser the longer it is: 42s,
// 12m5s, 5h3m, 3 days.
func formatAgo(t, now time.Time) string {
	return formatDuration(now.Sub(t))
}

// formatDuration writes a duration for people, coarser the longer it is.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Truncate(time.Second).String()
	case d < time.Hour:
		return strings.TrimSuffix(d.Truncate(time.Second).String(), "0s")
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s")
	}
	return plural(int(d/(24*time.Hour)), "day")
}

// plural writes n and the noun, with an s when n is not 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressLineEvery is how often progress is printed as plain lines when
// the output is not a terminal.
var progressLineEvery = 10 * time.Second

// progressView shows the progress of a long command: a bar on a terminal,
// else a plain line now and then.
type progressView struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	label string
	last  time.Time
}

// newProgressView returns a view that writes to w; quiet shows nothing.
func newProgressView(w io.Writer, label string, quiet bool) *progressView {
	v := &progressView{w: w, label: label}
	if quiet {
		v.w = nil
		return v
	}
	if isTerminal(w) {
		v.bar = progressbar.NewOptions64(1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionFullWidth(),
		)
	}
	return v
}

// update shows done of total bytes; line is the plain-line form of the
// state and desc the bar's short description.
func (v *progressView) update(done, total int64, desc, line string) {
	switch {
	case v.w == nil:
	case v.bar != nil:
		v.bar.ChangeMax64(max(total, 1))
		v.bar.Describe(v.label + ": " + desc)
		_ = v.bar.Set64(min(done, max(total, 1)))
	case time.Since(v.last) >= progressLineEvery:
		v.last = time.Now()
		fmt.Fprintf(v.w, "%s: %s\n", v.label, line)
	}
}

// finish removes the bar, so that what follows starts on a clean line.
func (v *progressView) finish() {
	if v.bar != nil {
		_ = v.bar.Exit()
		_ = v.bar.Clear()
	}
}

// shorten cuts a path to at most n characters, keeping its end.
func shorten(p string, n int) string {
	if len(p) <= n || n < 4 {
		return p
	}
	return "..." + p[len(p)-(n-3):]
}

// indent prefixes every line of s after the first with pad.
func indent(s, pad string) string {
	return strings.ReplaceAll(s, "\n", "\n"+pad)
}
