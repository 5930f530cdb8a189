//go:build bench

package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// benchBaseline is the medians of cloudmount from one earlier run, kept in
// the repository so that a change can be measured against the one before.
type benchBaseline struct {
	Date    string     `json:"date"`
	Commit  string     `json:"commit"`
	Machine string     `json:"machine"`
	Sizes   benchSizes `json:"sizes"`
	Reps    int        `json:"reps"`
	// Medians are system → metric → median.
	Medians map[string]map[string]float64 `json:"medians"`
}

// baselineFile is integration/testdata/bench-baseline.json: one baseline
// per size ("quick", "full").
func baselineFile() string {
	return filepath.Join(repoRoot, "integration", "testdata", "bench-baseline.json")
}

func readBaselines(name string) (map[string]benchBaseline, error) {
	all := map[string]benchBaseline{}
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return all, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return all, nil
}

// saveBaseline stores the cloudmount medians of res as the baseline of its size.
func saveBaseline(res *benchResults, name string) error {
	all, err := readBaselines(name)
	if err != nil {
		return err
	}
	bl := benchBaseline{
		Date: res.Date, Commit: res.Commit, Sizes: res.Sizes, Reps: res.Reps,
		Machine: fmt.Sprintf("%s, %d cores, load %s at start", res.Machine.CPU, res.Machine.Cores, res.Machine.LoadStart),
		Medians: map[string]map[string]float64{},
	}
	for _, s := range res.Systems {
		if s.Role != string(roleCloudmount) {
			continue
		}
		for metric := range res.Samples[s.ID] {
			if v, ok := res.median(s.ID, metric); ok {
				if bl.Medians[s.ID] == nil {
					bl.Medians[s.ID] = map[string]float64{}
				}
				bl.Medians[s.ID][metric] = v
			}
		}
	}
	if len(bl.Medians) == 0 {
		return errors.New("no cloudmount figures to save as the baseline")
	}
	all[res.Sizes.Name] = bl
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	return os.WriteFile(name, append(b, '\n'), 0o644)
}

// baselineTolerance is how much slower than the baseline a figure may be
// before it is flagged: BENCH_TOLERANCE (a fraction), 0.25 by default.
func baselineTolerance() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("BENCH_TOLERANCE"), 64); err == nil && v > 0 {
		return v
	}
	return 0.25
}

// baselineNoise is the smallest difference in seconds that counts: less
// is noise on a shared machine.
const baselineNoise = 0.1

// compareBaseline compares this run's cloudmount medians with the baseline
// of the same size, writes the comparison to out and logs it. With
// BENCH_STRICT set, a regression fails the test.
func compareBaseline(t *testing.T, cfg *benchConfig, res *benchResults, out string) {
	t.Helper()
	all, err := readBaselines(baselineFile())
	if err != nil {
		t.Errorf("bench: %v", err)
		return
	}
	bl, ok := all[cfg.Sizes.Name]
	if !ok {
		msg := fmt.Sprintf("bench: no %s baseline in %s: run `make bench SAVE_BASELINE=1%s` first", cfg.Sizes.Name, baselineFile(), map[string]string{"quick": " QUICK=1"}[cfg.Sizes.Name])
		if cfg.SaveBaseline {
			t.Log(msg)
		} else {
			t.Error(msg)
		}
		return
	}
	if bl.Sizes != cfg.Sizes {
		t.Logf("bench: the baseline was taken with other sizes (%+v); the comparison means little", bl.Sizes)
	}
	tol := baselineTolerance()
	var b strings.Builder
	fmt.Fprintf(&b, "# cloudmount against its baseline\n\n")
	fmt.Fprintf(&b, "Now: %s, commit %s, %d repetitions, load %s at start. Baseline: %s, commit %s, %d repetitions (%s). ",
		res.Date, res.Commit, res.Reps, res.Machine.LoadStart, bl.Date, bl.Commit, bl.Reps, bl.Machine)
	fmt.Fprintf(&b, "Flagged: more than %.0f%% (and %.0f ms) slower, more files transferred, or more than %.0f%% more memory.\n\n", tol*100, baselineNoise*1000, tol*100)
	fmt.Fprintf(&b, "| system | measurement | baseline | now | now ÷ baseline | |\n|---|---|--:|--:|--:|---|\n")
	var regressions []string
	for _, s := range res.Systems {
		if s.Role != string(roleCloudmount) {
			continue
		}
		for _, m := range benchMetrics(res.Sizes) {
			now, ok1 := res.median(s.ID, m.ID)
			was, ok2 := bl.Medians[s.ID][m.ID]
			if !ok1 || !ok2 {
				continue
			}
			ratio, verdict := 0.0, ""
			if was > 0 {
				ratio = now / was
			}
			switch {
			case m.Unit == "files" && now > was:
				verdict = "worse"
			case m.Unit == "files":
			case m.Unit == "MiB" && ratio > 1+tol:
				verdict = "more memory"
			case m.Unit == "s" && ratio > 1+tol && now-was > baselineNoise:
				verdict = "slower"
			case m.Unit == "s" && was > 0 && ratio < 1/(1+tol) && was-now > baselineNoise:
				verdict = "faster"
			}
			shown := "—"
			if was > 0 {
				shown = ratioString(ratio)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", s.ID, m.Label, formatValue(m.ID, was), formatValue(m.ID, now), shown, verdict)
			if verdict == "worse" || verdict == "slower" || verdict == "more memory" {
				regressions = append(regressions, fmt.Sprintf("%s %s: %s → %s (%s)", s.ID, m.ID, formatValue(m.ID, was), formatValue(m.ID, now), verdict))
			}
		}
	}
	if len(regressions) == 0 {
		fmt.Fprintf(&b, "\nNo regression beyond the tolerance.\n")
	} else {
		fmt.Fprintf(&b, "\nRegressions:\n\n- %s\n", strings.Join(regressions, "\n- "))
	}
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		t.Errorf("bench: %v", err)
	}
	t.Logf("bench: baseline comparison (also in %s):\n%s", out, b.String())
	if len(regressions) > 0 && envTrue("BENCH_STRICT") {
		t.Errorf("bench: %d figures regressed against the baseline (BENCH_STRICT is set)", len(regressions))
	}
}
