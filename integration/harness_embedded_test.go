package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// startEmbedded starts `cloudmount serve webdav` (the embedded server of
// the demo) with basic auth on a temp directory and stops it in t.Cleanup.
// It is not one of serverStarters: the behaviour tests run against servers
// that cloudmount did not write; this one is here for what only it offers
// (an RFC 4331 quota) and for the demo's sake.
func startEmbedded(t *testing.T) *Server {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	s := newServerBase(t, "embedded")
	base := filepath.Dir(s.Dir)
	s.AccessLog = filepath.Join(base, "serve.log")
	s.ErrorLog = s.AccessLog
	port := freePort(t)
	s.URL = fmt.Sprintf("http://127.0.0.1:%d/", port)
	out, err := os.Create(s.AccessLog)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "serve", "webdav", s.Dir, "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--user", s.User, "-v")
	cmd.Env = append(os.Environ(), "CLOUDMOUNT_PASSWORD="+s.Password)
	cmd.Stdout, cmd.Stderr = out, out
	p, err := startProc("cloudmount serve", cmd)
	out.Close()
	if err != nil {
		t.Fatal(err)
	}
	s.proc = p
	t.Cleanup(func() { s.stop(t) })
	if err := s.waitReady(30 * time.Second); err != nil {
		t.Fatalf("cloudmount serve webdav did not start: %v\n%s", err, tailFile(s.AccessLog, 20))
	}
	return s
}
