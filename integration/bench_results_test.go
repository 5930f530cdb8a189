//go:build bench

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// benchMachine describes where the figures were taken.
type benchMachine struct {
	CPU       string            `json:"cpu"`
	Cores     int               `json:"cores"`
	MemGiB    float64           `json:"mem_gib"`
	Kernel    string            `json:"kernel"`
	OS        string            `json:"os"`
	LoadStart string            `json:"load_start"`
	LoadEnd   string            `json:"load_end"`
	Versions  map[string]string `json:"versions"`
}

// benchSystemInfo is a system as the report shows it.
type benchSystemInfo struct {
	ID          string `json:"id"`
	Label       string `json:"label"`
	Role        string `json:"role"`
	Server      string `json:"server,omitempty"`
	Unavailable string `json:"unavailable,omitempty"`
	Command     string `json:"command"`
}

// benchResults are all measurements of one run.
type benchResults struct {
	Date     string            `json:"date"`
	Commit   string            `json:"commit"`
	Sizes    benchSizes        `json:"sizes"`
	Reps     int               `json:"reps"`
	Baseline bool              `json:"baseline_mode"`
	Machine  benchMachine      `json:"machine"`
	Systems  []benchSystemInfo `json:"systems"`
	// Samples are system → metric → one value per repetition.
	Samples map[string]map[string][]float64 `json:"samples"`
	// Errors are system → workload → the first error.
	Errors map[string]map[string]string `json:"errors,omitempty"`
	// Warnings are system → messages, each once.
	Warnings map[string][]string `json:"warnings,omitempty"`
	Notes    []string            `json:"notes,omitempty"`
	Duration string              `json:"duration"`

	started time.Time
}

func newBenchResults(cfg *benchConfig) *benchResults {
	now := time.Now()
	return &benchResults{
		Date:     now.UTC().Format("2006-01-02 15:04 UTC"),
		Commit:   gitCommit(),
		Sizes:    cfg.Sizes,
		Reps:     cfg.Reps,
		Baseline: cfg.Baseline,
		Machine:  machineInfo(),
		Samples:  map[string]map[string][]float64{},
		Errors:   map[string]map[string]string{},
		Warnings: map[string][]string{},
		started:  now,
	}
}

func (res *benchResults) addSystem(s *benchSystem) {
	res.Systems = append(res.Systems, benchSystemInfo{
		ID: s.ID, Label: s.Label, Role: string(s.Role), Server: s.Server, Unavailable: s.Unavailable, Command: s.Command,
	})
}

// system returns the system with id, if the run has it.
func (res *benchResults) system(id string) (benchSystemInfo, bool) {
	for _, s := range res.Systems {
		if s.ID == id {
			return s, true
		}
	}
	return benchSystemInfo{}, false
}

func (res *benchResults) add(sys, metric string, v float64) {
	if res.Samples[sys] == nil {
		res.Samples[sys] = map[string][]float64{}
	}
	res.Samples[sys][metric] = append(res.Samples[sys][metric], v)
}

func (res *benchResults) fail(sys, workload string, err error) {
	if res.Errors[sys] == nil {
		res.Errors[sys] = map[string]string{}
	}
	if _, ok := res.Errors[sys][workload]; !ok {
		res.Errors[sys][workload] = oneLine(err.Error())
	}
}

func (res *benchResults) warn(sys, msg string) {
	if !slices.Contains(res.Warnings[sys], msg) {
		res.Warnings[sys] = append(res.Warnings[sys], msg)
	}
}

func (res *benchResults) note(format string, args ...any) {
	res.Notes = append(res.Notes, fmt.Sprintf(format, args...))
}

// median is the median of the values of sys and metric.
func (res *benchResults) median(sys, metric string) (float64, bool) {
	vs := slices.Clone(res.Samples[sys][metric])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2], true
	}
	return (vs[n/2-1] + vs[n/2]) / 2, true
}

func (res *benchResults) writeJSON(name string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	return os.WriteFile(name, append(b, '\n'), 0o644)
}

// gitCommit is the short commit of the repository, with "+dirty" when the
// work tree has changes.
func gitCommit() string {
	out, err := exec.Command("git", "-C", repoRoot, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", repoRoot, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "+dirty"
	}
	return c
}

// machineInfo reads the CPU, memory, kernel, OS and tool versions.
func machineInfo() benchMachine {
	m := benchMachine{Cores: runtime.NumCPU(), LoadStart: loadAverage(), Versions: map[string]string{}}
	m.CPU = firstMatch("/proc/cpuinfo", "model name")
	if kb := firstMatch("/proc/meminfo", "MemTotal"); kb != "" {
		var n float64
		_, _ = fmt.Sscan(kb, &n)
		m.MemGiB = math.Round(n/(1<<20)*10) / 10
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	m.Versions["go"] = runtime.Version()
	for name, argv := range map[string][]string{
		"rclone":  {"rclone", "version"},
		"davfs2":  {"mount.davfs", "-V"},
		"sshfs":   {"sshfs", "--version"},
		"apache2": {"apache2", "-v"},
		"openssh": {"ssh", "-V"},
		"curl":    {"curl", "--version"},
		"rsync":   {"rsync", "--version"},
	} {
		p, err := lookTool(argv[0])
		if err != nil {
			continue
		}
		out, _ := exec.Command(p, argv[1:]...).CombinedOutput()
		if v := versionLine(name, string(out)); v != "" {
			m.Versions[name] = v
		}
	}
	return m
}

// versionLine picks the line of a --version output that names the version.
func versionLine(name, out string) string {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		low := strings.ToLower(line)
		if line == "" {
			continue
		}
		if name == "apache2" && !strings.HasPrefix(low, "server version") {
			continue
		}
		if name == "sshfs" && !strings.HasPrefix(low, "sshfs version") {
			continue
		}
		if name == "curl" {
			// "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/…"
			if f := strings.Fields(line); len(f) > 2 {
				line = strings.Join(f[:2], " ")
			}
		}
		return line
	}
	return ""
}

// firstMatch returns the value of the first "key: value" line with key.
func firstMatch(file, key string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// benchMetric is one row of the tables.
type benchMetric struct {
	ID    string
	Label string
	// Unit is "s", "files" or "MiB".
	Unit string
}

// benchMetrics are the rows, in order, with labels for the run's sizes.
func benchMetrics(sz benchSizes) []benchMetric {
	big := sizeLabel(sz.BigFile)
	small := fmt.Sprintf("%s × %s in %d dirs (untar)", thousands(sz.SmallFiles), sizeLabel(int64(sz.SmallSize)), sz.SmallDirs)
	list := thousands(sz.ListFiles) + " files"
	tree := fmt.Sprintf("rsync -a of %s files (%s)", thousands(sz.TreeFiles), sizeLabel(sz.TreeBytes))
	ms := []benchMetric{
		{"write.close", "1. write " + big + ": until close returns", "s"},
		{"write.server", "1. write " + big + ": until on the server", "s"},
		{"read.cold", "2. read " + big + ": cold (new mount, caches dropped)", "s"},
		{"read.warm", "2. read " + big + ": warm (again)", "s"},
		{"small.close", "3. " + small + ": until the last close", "s"},
		{"small.server", "3. " + small + ": until all on the server", "s"},
		{"ls.cold", "4. `ls -lR` of " + list + ": cold", "s"},
		{"ls.warm", "4. `ls -lR` of " + list + ": warm", "s"},
		{"find.cold", "4. `find . -type f | wc -l` of " + list + ": cold", "s"},
		{"find.warm", "4. `find . -type f | wc -l` of " + list + ": warm", "s"},
		{"rsync.first", "5. " + tree + ": first run", "s"},
		{"rsync.first.server", "5. " + tree + ": first run, until all on the server", "s"},
		{"rsync.second", "5. " + tree + ": second run", "s"},
		{"rsync.second.files", "5. second run: files transferred", "files"},
		{"rsync.touch", "5. after `touch` of every source file", "s"},
		{"rsync.touch.files", "5. after `touch`: files transferred", "files"},
		{"rsync.remount", "5. after unmount and mount", "s"},
		{"rsync.remount.files", "5. after unmount and mount: files transferred", "files"},
	}
	for _, w := range benchWorkloadNames {
		ms = append(ms, benchMetric{"rss." + w, "6. daemon peak RSS: " + w, "MiB"})
	}
	for _, w := range benchWorkloadNames {
		ms = append(ms, benchMetric{"cpu." + w, "6. daemon CPU seconds: " + w, "s"})
	}
	return ms
}

// sizeLabel writes a byte count in KiB, MiB or GiB.
func sizeLabel(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", (n+(1<<19))>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// thousands writes n with thousands separators.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// formatValue writes a measurement for the tables and the log.
func formatValue(metric string, v float64) string {
	switch {
	case strings.HasSuffix(metric, ".files"):
		return fmt.Sprintf("%.0f", v)
	case strings.HasPrefix(metric, "rss."):
		return fmt.Sprintf("%.0f", v)
	case v < 0.1:
		return fmt.Sprintf("%.3f", v)
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// summaryText is a short plain-text table of the medians for the test log.
func (res *benchResults) summaryText() string {
	var b strings.Builder
	for _, m := range benchMetrics(res.Sizes) {
		line := fmt.Sprintf("%-58s", m.Label)
		found := false
		for _, s := range res.Systems {
			if v, ok := res.median(s.ID, m.ID); ok {
				line += fmt.Sprintf(" %s=%s", s.ID, formatValue(m.ID, v))
				found = true
			}
		}
		if found {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
