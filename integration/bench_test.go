//go:build bench

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

// The benchmark of issue 5 and of the issue "SFTP backend": cloudmount
// side by side with davfs2, sshfs and rclone mount on the same loopback
// servers (WebDAV and OpenSSH), next to the limits (local disk, curl,
// sftp/scp). It is test code behind the bench build tag so that it reuses
// the harness (servers, mounts, cleanup) and never runs with the ordinary
// tests:
//
//	go test -tags bench -run TestBench -timeout 3h -v ./integration/
//
// `make bench` sets the environment below and installs what it needs.
//
//	BENCH_SIZE=full|quick|tiny  sizes (full: those of the issue)
//	BENCH_REPS=N                repetitions of each measurement (default 3)
//	BENCH_BASELINE=1            cloudmount alone, compared with the saved baseline
//	BENCH_SAVE_BASELINE=1       write this run's cloudmount medians as the baseline
//	BENCH_SYSTEMS=a,b           only these systems (IDs of benchSystems; commas or blanks)
//	BENCH_WORKLOADS=a,b         only these workloads (write, read, small, ls, rsync)
//
// A full or quick run writes docs/bench.md and docs/bench.png; a tiny run,
// a run limited by BENCH_SYSTEMS or BENCH_WORKLOADS, and a baseline run
// write to bin/ instead.

// benchSizes are the sizes of the workloads.
type benchSizes struct {
	// Name is "full", "quick" or "tiny".
	Name string `json:"name"`
	// BigFile is the file written and read back (workloads 1 and 2).
	BigFile int64 `json:"big_file"`
	// SmallFiles of SmallSize bytes in SmallDirs directories (workload 3).
	SmallFiles int `json:"small_files"`
	SmallDirs  int `json:"small_dirs"`
	SmallSize  int `json:"small_size"`
	// ListFiles in ListDirs directories, prepared on the server (workload 4).
	ListFiles int `json:"list_files"`
	ListDirs  int `json:"list_dirs"`
	// TreeFiles of mixed sizes, TreeBytes in all, backed up with rsync (workload 5).
	TreeFiles int   `json:"tree_files"`
	TreeBytes int64 `json:"tree_bytes"`
}

var benchSizeSets = map[string]benchSizes{
	"full":  {"full", 512 << 20, 2000, 20, 4096, 10000, 100, 2000, 100 << 20},
	"quick": {"quick", 64 << 20, 200, 20, 4096, 1000, 10, 200, 10 << 20},
	"tiny":  {"tiny", 4 << 20, 40, 4, 4096, 100, 5, 30, 1 << 20},
}

// benchConfig is what the environment asks of this run.
type benchConfig struct {
	Sizes        benchSizes
	Reps         int
	Baseline     bool
	SaveBaseline bool
	// systems and workloads, when set, limit the run (development).
	systems, workloads []string
	// CI makes a peer that cannot be started a failure.
	CI bool
}

// partial reports whether the run leaves out systems or workloads, so that
// its report must not replace docs/bench.md.
func (c *benchConfig) partial() bool {
	return c.Baseline || c.Sizes.Name == "tiny" || len(c.systems) > 0 || len(c.workloads) > 0
}

// wantWorkload reports whether the run includes workload w.
func (c *benchConfig) wantWorkload(w string) bool {
	return len(c.workloads) == 0 || slices.Contains(c.workloads, w)
}

// wantSystem reports whether the run includes the system id.
func (c *benchConfig) wantSystem(id string) bool {
	if c.Baseline && !strings.HasPrefix(id, "cloudmount") {
		return false
	}
	return len(c.systems) == 0 || slices.Contains(c.systems, id)
}

func benchConfigFromEnv(t *testing.T) *benchConfig {
	t.Helper()
	c := &benchConfig{Reps: 3, CI: os.Getenv("CI") != ""}
	size := os.Getenv("BENCH_SIZE")
	if size == "" {
		size = "full"
	}
	s, ok := benchSizeSets[size]
	if !ok {
		t.Fatalf("BENCH_SIZE=%q: want full, quick or tiny", size)
	}
	c.Sizes = s
	if v := os.Getenv("BENCH_REPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("BENCH_REPS=%q: want a positive number", v)
		}
		c.Reps = n
	}
	c.Baseline = envTrue("BENCH_BASELINE")
	c.SaveBaseline = envTrue("BENCH_SAVE_BASELINE")
	c.systems = envList("BENCH_SYSTEMS")
	c.workloads = envList("BENCH_WORKLOADS")
	for _, w := range c.workloads {
		if !slices.Contains(benchWorkloadNames, w) {
			t.Fatalf("BENCH_WORKLOADS: unknown workload %q (have %v)", w, benchWorkloadNames)
		}
	}
	return c
}

func envTrue(name string) bool {
	v := os.Getenv(name)
	return v != "" && v != "0" && v != "false"
}

// envList reads a list separated by commas or blanks ("a,b", "a b").
func envList(name string) []string {
	return strings.FieldsFunc(os.Getenv(name), func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

// TestBench runs the benchmark and writes its report.
func TestBench(t *testing.T) {
	cfg := benchConfigFromEnv(t)
	// Registered first, so it runs last: after every mount's own cleanup,
	// nothing of this run may be left mounted.
	t.Cleanup(func() {
		if left := leftoverMounts(); len(left) > 0 {
			t.Errorf("bench: still mounted after the run: %q", left)
		}
	})
	res := newBenchResults(cfg)
	t.Logf("bench: %s sizes, %d repetitions, load average at start %s", cfg.Sizes.Name, cfg.Reps, res.Machine.LoadStart)

	env := setupBench(t, cfg, res)
	for _, w := range benchWorkloads {
		if !cfg.wantWorkload(w.name) {
			continue
		}
		t.Run(w.name, func(t *testing.T) {
			start := time.Now()
			runWorkload(t, env, w)
			t.Logf("bench: workload %s took %v", w.name, time.Since(start).Round(time.Second))
		})
	}
	res.Machine.LoadEnd = loadAverage()
	res.Duration = time.Since(res.started).Round(time.Second).String()
	finishBench(t, cfg, res)
}

// runWorkload runs one workload on every available system, interleaved:
// repetition 1 on each system in turn, then repetition 2, and so on.
func runWorkload(t *testing.T, env *benchEnv, w benchWorkload) {
	for rep := 1; rep <= env.cfg.Reps; rep++ {
		for _, sys := range env.systems {
			if sys.Unavailable != "" || !w.supports(sys) {
				continue
			}
			r := &benchRun{t: t, env: env, sys: sys, rep: rep, workload: w.name}
			start := time.Now()
			if err := r.finish(w.run(r)); err != nil {
				env.res.fail(sys.ID, w.name, err)
				msg := fmt.Sprintf("bench: %s on %s, repetition %d: %v", w.name, sys.ID, rep, err)
				if sys.Role == roleCloudmount {
					t.Error(msg)
				} else {
					t.Log(msg)
				}
				continue
			}
			t.Logf("bench: %s on %s, repetition %d: %s (%v)", w.name, sys.ID, rep, r.summary(), time.Since(start).Round(10*time.Millisecond))
		}
	}
}

// finishBench writes the report, the chart and the baseline comparison.
func finishBench(t *testing.T, cfg *benchConfig, res *benchResults) {
	outDir := filepath.Join(repoRoot, "docs")
	if cfg.partial() {
		outDir = filepath.Join(repoRoot, "bin")
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := res.writeJSON(filepath.Join(repoRoot, "bin", "bench-results.json")); err != nil {
		t.Errorf("bench: %v", err)
	}
	if cfg.Baseline {
		compareBaseline(t, cfg, res, filepath.Join(outDir, "bench-baseline.md"))
	} else {
		md := filepath.Join(outDir, "bench.md")
		png := filepath.Join(outDir, "bench.png")
		if err := writeBenchChart(res, png); err != nil {
			t.Errorf("bench: chart: %v", err)
		}
		if err := writeBenchReport(res, md); err != nil {
			t.Errorf("bench: report: %v", err)
		}
		t.Logf("bench: wrote %s and %s", md, png)
		t.Logf("bench: summary\n%s", res.summaryText())
	}
	if cfg.SaveBaseline {
		if err := saveBaseline(res, baselineFile()); err != nil {
			t.Errorf("bench: %v", err)
		} else {
			t.Logf("bench: saved the %s baseline in %s", cfg.Sizes.Name, baselineFile())
		}
	}
}

// TestRenderBenchReport renders bin/bench.md and bin/bench.png again from
// the results of the last run (bin/bench-results.json, or the file named by
// BENCH_RESULTS), to work on the report without measuring again:
//
//	go test -tags bench -run TestRenderBenchReport ./integration/
func TestRenderBenchReport(t *testing.T) {
	name := os.Getenv("BENCH_RESULTS")
	if name == "" {
		name = filepath.Join(repoRoot, "bin", "bench-results.json")
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Skipf("no results to render: %v", err)
	}
	var res benchResults
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	md, png := filepath.Join(repoRoot, "bin", "bench.md"), filepath.Join(repoRoot, "bin", "bench.png")
	if err := writeBenchChart(&res, png); err != nil {
		t.Fatal(err)
	}
	if err := writeBenchReport(&res, md); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s and %s from %s", md, png, name)
}
