package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// startRclone starts `rclone serve webdav` on a temp directory with basic
// auth from an htpasswd file, as its own process, and stops it in t.Cleanup.
// It reads no rclone config from $HOME.
func startRclone(t *testing.T) *Server {
	t.Helper()
	rclone := needTool(t, "rclone")
	s := newServerBase(t, "rclone")
	base := filepath.Dir(s.Dir)
	htpasswd := filepath.Join(base, "htpasswd")
	s.writeHtpasswd(t, htpasswd)
	conf := filepath.Join(base, "rclone.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// rclone logs one INFO line per request ("/path: METHOD from addr"):
	// that is its access log.
	s.AccessLog = filepath.Join(base, "rclone.log")
	s.ErrorLog = s.AccessLog

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		s.URL = fmt.Sprintf("http://127.0.0.1:%d/", port)
		out, err := os.Create(filepath.Join(base, "stderr.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(rclone, "serve", "webdav", s.Dir,
			"--addr", fmt.Sprintf("127.0.0.1:%d", port),
			"--htpasswd", htpasswd,
			"--config", conf,
			"--log-file", s.AccessLog, "-v",
			// See changes made in Dir behind the mount's back at once.
			"--dir-cache-time", "0s",
		)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base, "LANG=C"}
		retry, err := s.launch(t, "rclone", cmd, out, s.AccessLog)
		if err == nil {
			return s
		}
		lastErr = err
		if !retry {
			break
		}
	}
	need(t, "rclone serve webdav did not start: %v", lastErr)
	return nil
}
