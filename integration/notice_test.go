package integration

import (
	"strings"
	"testing"
)

// TestMountSaysWhatTheServerCannotDo: where the server keeps less than a
// local filesystem (mtimes, modes or hashes only in this machine's cache)
// or cannot check other clients' changes itself, the mount command says
// so in one line on the terminal, and `cloudmount status` says what the
// server keeps, on every server.
func TestMountSaysWhatTheServerCannotDo(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		m, out, err := tryMount(t, srv, MountOptions{})
		if err != nil {
			t.Fatalf("mount: %v\n%s", err, out)
		}
		var notice string
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "cloudmount: ") && strings.Contains(line, "the server") {
				notice = line
			}
		}
		t.Logf("%s: mount said %q", srv.Kind, notice)
		switch srv.Kind {
		case "apache":
			// Dead properties and If-Match: nothing to say.
			if notice != "" {
				t.Errorf("Apache keeps everything and checks If-Match; the mount said %q", notice)
			}
		default:
			// No dead properties: the metadata goes to a file per
			// directory, and conflicts are checked by cloudmount.
			if !strings.Contains(notice, "in a metadata file per directory") || !strings.Contains(notice, "cloudmount checks") {
				t.Errorf("%s keeps no dead properties; the mount said %q, want where the metadata is kept", srv.Kind, notice)
			}
		}
		if notice != "" && strings.Contains(notice, srv.Password) {
			t.Errorf("the notice holds the password")
		}
		st := m.Status(t)
		if !strings.Contains(st.raw, `"server":`) || !strings.Contains(st.raw, "the server keeps") && !strings.Contains(st.raw, "only this machine") {
			t.Errorf("status --json says nothing of the server: %s", st.raw)
		}
	})
}
