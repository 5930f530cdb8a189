package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// profileEnv names a directory where each mount's daemon writes a CPU
// profile of its whole life (cpu-PID.pprof) and a heap profile at its end
// (heap-PID.pprof), for `go tool pprof`. make bench sets it to explain
// where a workload's time goes; it is not an option for users.
const profileEnv = "CLOUDMOUNT_PROFILE_DIR"

// startProfile starts the CPU profile when profileEnv is set and returns
// the function that ends it and writes the heap profile.
func startProfile(log *slog.Logger) func() {
	dir := os.Getenv(profileEnv)
	if dir == "" {
		return func() {}
	}
	name := func(kind string) string { return filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", kind, os.Getpid())) }
	f, err := os.Create(name("cpu"))
	if err != nil {
		log.Warn("no CPU profile", "err", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Warn("no CPU profile", "err", err)
		f.Close()
		return func() {}
	}
	log.Info("writing profiles", "dir", dir)
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if h, err := os.Create(name("heap")); err == nil {
			pprof.WriteHeapProfile(h)
			h.Close()
		}
	}
}
