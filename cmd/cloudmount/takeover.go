package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/cache"
	"github.com/cloudmount/cloudmount/mountutil"
)

// takeOverWait bounds how long a new mount waits for a draining daemon to
// hand over its cache directory.
const takeOverWait = 30 * time.Second

// openStore opens the cache directory. If it belongs to a daemon whose
// mount is gone (unmounted, still uploading its queue, as after `umount
// ~/cloud && mount ~/cloud`), the new mount takes the queue over: it asks
// that daemon to stop (SIGTERM ends its drain; the rest stays in the
// journal) and waits for it, then opens the directory and uploads the rest
// itself. A daemon that still serves its mount keeps the directory.
func openStore(cfg *mountConfig, log *slog.Logger) (*cache.Store, error) {
	o := cache.Options{CacheSize: cfg.CacheSize, Mountpoint: cfg.Mountpoint}
	store, err := cache.Open(cfg.CacheDir, o)
	var busy *cache.BusyError
	if !errors.As(err, &busy) || !drainingDaemon(busy) {
		return store, err
	}
	log.Info("taking over the upload queue of the earlier mount of this cache directory, which was still uploading after its unmount", "pid", busy.PID, "mountpoint", busy.Mountpoint)
	if err := syscall.Kill(busy.PID, syscall.SIGTERM); err != nil {
		return nil, fmt.Errorf("%w (asking it to hand over its queue: %v)", busy, err)
	}
	deadline := time.Now().Add(takeOverWait)
	for {
		store, err = cache.Open(cfg.CacheDir, o)
		if !errors.As(err, &busy) || time.Now().After(deadline) {
			return store, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// drainingDaemon reports whether the holder of a cache directory is a
// cloudmount of this user whose mountpoint is no longer a mount.
func drainingDaemon(b *cache.BusyError) bool {
	if b.PID <= 0 || b.Mountpoint == "" {
		return false
	}
	proc := "/proc/" + strconv.Itoa(b.PID)
	fi, err := os.Stat(proc)
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Getuid()) {
		return false
	}
	exe, err := os.Readlink(proc + "/exe")
	if err != nil || !strings.HasPrefix(filepath.Base(exe), "cloudmount") {
		return false
	}
	mounted, err := mountutil.IsMounted(b.Mountpoint)
	return err == nil && !mounted
}
