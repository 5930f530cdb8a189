//go:build bench

package integration

import (
	"fmt"
	"strings"
)

// rssLimitMiB is the target for the daemon's peak RSS in every workload.
const rssLimitMiB = 64

// benchTarget is one target of an issue: a ratio of a cloudmount median
// to a limit or a peer measured in the same run, or a bound.
type benchTarget struct {
	// Text says the target as the issue does.
	Text string
	// Metric is the measurement; Ref is the system it is compared with:
	// "curl" (curl against the same server), or a system ID ("local",
	// "sshfs", "sftp"); Max is the largest ratio that meets the target,
	// or for RSS the bound in MiB.
	Metric, Ref string
	Max         float64
	// Below: the figure must be below Max, not at most Max ("faster than
	// sshfs" is a ratio below 1).
	Below bool
	// Files, when set, is a count that must be 0 as well.
	Files string
	// RSS is the peak RSS target: every rss.* median within Max MiB.
	RSS bool
}

// benchTargetSet is the targets of one issue and the cloudmount systems
// they are for: one table of the report.
type benchTargetSet struct {
	// Title names the issue.
	Title string
	// Systems are the cloudmount systems the targets are checked for.
	Systems []string
	// Reference says what the targets compare with, below the table.
	Reference string
	Targets   []benchTarget
}

var benchTargetSets = []benchTargetSet{
	{
		Title:   "WebDAV (issue 5)",
		Systems: []string{"cloudmount-apache", "cloudmount-rclone"},
		Reference: "The reference is the limit measured on the same server in the same run: curl against Apache for cloudmount on Apache, " +
			"curl against rclone serve for cloudmount on rclone serve.",
		Targets: benchTargets,
	},
	{
		Title:   "SFTP (issue \"SFTP backend\")",
		Systems: []string{"cloudmount-sftp"},
		Reference: "The references are measured on the same OpenSSH sshd in the same run: sshfs (default options), " +
			"sftp/scp through one ssh master connection, and local disk.",
		Targets: sftpTargets,
	},
	{
		Title:   "Tahoe-LAFS (issue 14)",
		Systems: []string{"cloudmount-tahoe"},
		Reference: "The references are measured in the same run: sshfs (default options) on the client node's own SFTP frontend, " +
			"on another directory of the same grid, and local disk. \"Until on the grid\" is checked through the client node's web API.",
		Targets: tahoeTargets,
	},
}

var benchTargets = []benchTarget{
	{Text: "write: until close ≤ 1.1× local disk", Metric: "write.close", Ref: "local", Max: 1.1},
	{Text: "write: until on the server ≤ 2× curl", Metric: "write.server", Ref: "curl", Max: 2},
	{Text: "read cold ≤ 1.3× curl", Metric: "read.cold", Ref: "curl", Max: 1.3},
	{Text: "read warm ≤ 2× local disk", Metric: "read.warm", Ref: "local", Max: 2},
	{Text: "small files: until the last close ≤ 2× local disk", Metric: "small.close", Ref: "local", Max: 2},
	{Text: "small files: until on the server ≤ 1× serial curl", Metric: "small.server", Ref: "curl", Max: 1},
	{Text: "`ls -lR` cold ≤ 1× the PROPFINDs it needs (curl)", Metric: "ls.cold", Ref: "curl", Max: 1},
	{Text: "`ls -lR` warm ≤ 1.25× local disk", Metric: "ls.warm", Ref: "local", Max: 1.25},
	{Text: "rsync second run: 0 files, ≤ 2× local disk", Metric: "rsync.second", Ref: "local", Max: 2, Files: "rsync.second.files"},
	{Text: "rsync after remount: 0 files, ≤ 2× local disk", Metric: "rsync.remount", Ref: "local", Max: 2, Files: "rsync.remount.files"},
	{Text: fmt.Sprintf("daemon peak RSS < %d MiB in every workload", rssLimitMiB), RSS: true, Max: rssLimitMiB, Below: true},
}

// sftpTargets are the targets of the issue "SFTP backend" for cloudmount
// on OpenSSH.
var sftpTargets = []benchTarget{
	{Text: "write: until on the server ≤ 1.3× sftp/scp", Metric: "write.server", Ref: "sftp", Max: 1.3},
	{Text: "read cold ≤ 1.3× sftp/scp", Metric: "read.cold", Ref: "sftp", Max: 1.3},
	{Text: "read warm ≤ 1.5× local disk", Metric: "read.warm", Ref: "local", Max: 1.5},
	{Text: "small files: until the last close faster than sshfs", Metric: "small.close", Ref: "sshfs", Max: 1, Below: true},
	{Text: "small files: until on the server faster than sshfs", Metric: "small.server", Ref: "sshfs", Max: 1, Below: true},
	{Text: "rsync first run faster than sshfs", Metric: "rsync.first", Ref: "sshfs", Max: 1, Below: true},
	{Text: "rsync second run: 0 files, ≤ 2× local disk", Metric: "rsync.second", Ref: "local", Max: 2, Files: "rsync.second.files"},
	{Text: "rsync after remount: 0 files, ≤ 2× local disk", Metric: "rsync.remount", Ref: "local", Max: 2, Files: "rsync.remount.files"},
	{Text: fmt.Sprintf("daemon peak RSS ≤ %d MiB in every workload", rssLimitMiB), RSS: true, Max: rssLimitMiB},
}

// tahoeTargets are the targets of issue 14 for cloudmount on a Tahoe-LAFS
// grid.
var tahoeTargets = []benchTarget{
	{Text: "rsync first run: until all on the grid faster than the SFTP frontend under sshfs", Metric: "rsync.first.server", Ref: "sshfs-tahoe", Max: 1, Below: true},
	{Text: "rsync second run: 0 files, ≤ 3× local disk", Metric: "rsync.second", Ref: "local", Max: 3, Files: "rsync.second.files"},
	{Text: "rsync after remount: 0 files, ≤ 3× local disk", Metric: "rsync.remount", Ref: "local", Max: 3, Files: "rsync.remount.files"},
	{Text: fmt.Sprintf("daemon peak RSS ≤ %d MiB in every workload", rssLimitMiB), RSS: true, Max: rssLimitMiB},
}

// exceeds reports whether v misses the bound of tg.
func (tg benchTarget) exceeds(v float64) bool {
	if tg.Below {
		return v >= tg.Max
	}
	return v > tg.Max
}

// targetResult is a target evaluated for one cloudmount system.
type targetResult struct {
	// Status is "met", "missed" or "n/a" (a figure is missing).
	Status string
	// Detail gives the ratio and the figures.
	Detail string
	// Ratio is the measured ratio (0 when none).
	Ratio float64
}

// refSystem is the system a target compares cloudmount on sys with: curl
// against the same server, or the system ref names.
func refSystem(sys, ref string) string {
	if ref == "curl" {
		return "curl-" + strings.TrimPrefix(sys, "cloudmount-")
	}
	return ref
}

// evaluate checks the target for the cloudmount system sys.
func (tg benchTarget) evaluate(res *benchResults, sys string) targetResult {
	if tg.RSS {
		worst, where := 0.0, ""
		for _, w := range benchWorkloadNames {
			if v, ok := res.median(sys, "rss."+w); ok && v > worst {
				worst, where = v, w
			}
		}
		if where == "" {
			return targetResult{Status: "n/a", Detail: "no figure"}
		}
		st := "met"
		if tg.exceeds(worst) {
			st = "missed"
		}
		return targetResult{Status: st, Ratio: worst / tg.Max, Detail: fmt.Sprintf("peak %.0f MiB (%s)", worst, where)}
	}
	ref := refSystem(sys, tg.Ref)
	v, ok1 := res.median(sys, tg.Metric)
	r, ok2 := res.median(ref, tg.Metric)
	switch {
	case !ok1:
		return targetResult{Status: "n/a", Detail: "no figure for " + sys}
	case !ok2 || r <= 0:
		return targetResult{Status: "n/a", Detail: "no figure for " + ref}
	}
	ratio := v / r
	st := "met"
	if tg.exceeds(ratio) {
		st = "missed"
	}
	detail := fmt.Sprintf("%.2f× (%s s vs %s s)", ratio, formatValue(tg.Metric, v), formatValue(tg.Metric, r))
	if tg.Files != "" {
		n, ok := res.median(sys, tg.Files)
		if !ok {
			return targetResult{Status: "n/a", Detail: "no file count"}
		}
		if n != 0 {
			st = "missed"
		}
		detail = fmt.Sprintf("%.0f files, %s", n, detail)
	}
	return targetResult{Status: st, Ratio: ratio, Detail: detail}
}

// statusMark is the symbol of a target's status in the tables.
func statusMark(s string) string {
	switch s {
	case "met":
		return "✅ met"
	case "missed":
		return "❌ missed"
	}
	return "– n/a"
}
