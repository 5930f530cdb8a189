//go:build bench

package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchRun is one repetition of one workload on one system. It keeps the
// mounts it made, so that they are unmounted however the run ends, and the
// daemon's peak RSS and CPU time over those mounts.
type benchRun struct {
	t        *testing.T
	env      *benchEnv
	sys      *benchSystem
	rep      int
	workload string

	mounts  []*benchMount
	removes []string
	rss     int64
	cpu     float64
	sampled bool
	got     []string
}

// name is a file or directory name unique to this run: several systems
// share a server.
func (r *benchRun) name(suffix string) string {
	return fmt.Sprintf("%s-%s-%d%s", r.workload, r.sys.ID, r.rep, suffix)
}

// serverPath is rel on the disk behind the system, removed when the run ends.
func (r *benchRun) serverPath(rel string) string {
	if r.sys.dir == "" {
		return "" // no disk behind it (a Tahoe grid): nothing to check or remove there
	}
	p := filepath.Join(r.sys.dir, rel)
	r.removes = append(r.removes, p)
	return p
}

// record adds one measurement.
func (r *benchRun) record(metric string, v float64) {
	r.env.res.add(r.sys.ID, metric, v)
	r.got = append(r.got, fmt.Sprintf("%s=%s", metric, formatValue(metric, v)))
}

// summary is the measurements of the run, for the test log.
func (r *benchRun) summary() string { return strings.Join(r.got, " ") }

// mount mounts the system with cache (fresh when ""); local disk is its
// directory.
func (r *benchRun) mount(cache string) (*benchMount, error) {
	if r.sys.kind == kindLocal {
		return &benchMount{Dir: r.sys.dir}, nil
	}
	m, err := r.sys.mount(r.t, cache)
	if err != nil {
		return nil, err
	}
	r.mounts = append(r.mounts, m)
	return m, nil
}

// unmount takes the daemon's peak RSS and CPU time, then unmounts.
func (r *benchRun) unmount(m *benchMount) error {
	if m.daemon != nil {
		if pid := m.daemon(); pid != 0 {
			rss, cpu, err := daemonUsage(pid)
			if err == nil {
				r.rss = max(r.rss, rss)
				r.cpu += cpu
				r.sampled = true
			}
		}
	}
	return m.close()
}

// remount unmounts m and mounts the system again with the same cache.
func (r *benchRun) remount(m *benchMount) (*benchMount, error) {
	if r.sys.kind == kindLocal {
		return m, nil
	}
	if err := r.unmount(m); err != nil {
		return nil, err
	}
	return r.mount(m.CacheDir)
}

// finish unmounts what is still mounted, removes the run's files from the
// server and the caches, and records RSS and CPU time when the run succeeded.
func (r *benchRun) finish(runErr error) error {
	var errs []error
	for _, m := range r.mounts {
		if !m.closed {
			if err := r.unmount(m); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, m := range r.mounts {
		if m.freshCache && m.CacheDir != "" {
			_ = os.RemoveAll(m.CacheDir)
		}
	}
	for _, p := range r.removes {
		_ = os.RemoveAll(p)
	}
	if runErr == nil && len(errs) == 0 && r.sampled {
		r.record("rss."+r.workload, float64(r.rss)/(1<<20))
		r.record("cpu."+r.workload, r.cpu)
	}
	return errors.Join(append([]error{runErr}, errs...)...)
}
