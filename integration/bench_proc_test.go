//go:build bench

package integration

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux architecture this runs on).
const clockTicks = 100

// checkDropCaches reports why the page cache cannot be dropped, or nil.
func checkDropCaches() error {
	if os.Geteuid() != 0 {
		return errors.New("not root: cannot write /proc/sys/vm/drop_caches")
	}
	return dropCaches()
}

// dropCaches writes dirty pages back and drops the page cache, dentries and
// inodes, so that a cold read comes from the disk (the servers' too).
func dropCaches() error {
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop caches: %w", err)
	}
	return nil
}

// procStat returns the parent PID and the CPU seconds (user + system) of pid.
func procStat(pid int) (ppid int, cpu float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed stat")
	}
	// Fields after the command: state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, 0, errors.New("malformed stat")
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ppid, float64(ut+st) / clockTicks, nil
}

// procTree returns pid and its live descendants (sshfs's ssh child).
func procTree(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, _, err := procStat(p); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// daemonUsage returns the peak resident set (the sum of VmHWM over the
// daemon and its children) and the CPU seconds they have used.
func daemonUsage(pid int) (rss int64, cpu float64, err error) {
	for _, p := range procTree(pid) {
		hwm, err1 := peakRSS(p)
		_, c, err2 := procStat(p)
		if err1 != nil || err2 != nil {
			if p == pid {
				return 0, 0, errors.Join(err1, err2)
			}
			continue // a child that has just exited
		}
		rss += hwm
		cpu += c
	}
	return rss, cpu, nil
}

// loadAverage returns the three load averages of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// load1 is the one-minute load average.
func load1(loadavg string) float64 {
	f := strings.Fields(loadavg)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// waitUntil polls check every interval until it reports done, and returns
// the time from start to the poll that saw it.
func waitUntil(start time.Time, timeout, interval time.Duration, check func() (bool, error)) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		done, err := check()
		if done {
			return time.Since(start), nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not done after %v (last: %v)", timeout, last)
		}
		time.Sleep(interval)
	}
}
