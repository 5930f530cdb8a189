package integration

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestUploadLimit: a server that refuses large uploads (Apache's
// LimitRequestBody, nginx's client_max_body_size: HTTP 413) gets a clear
// error in status and in `cloudmount sync`'s output, which names the
// limit and what to do; the file stays in the mount, readable, and queued
// in the journal across a remount; smaller files go through meanwhile.
func TestUploadLimit(t *testing.T) {
	const limit = 1 << 20
	for _, s := range []struct {
		kind  string
		start func(t *testing.T) *Server
	}{
		{"apache", func(t *testing.T) *Server {
			return startApacheWith(t, apacheExtra{Conf: func() string {
				return fmt.Sprintf("<Location /dav>\n  LimitRequestBody %d\n</Location>\n", limit)
			}})
		}},
		{"nginx", func(t *testing.T) *Server { return startNginxWith(t, fmt.Sprintf("client_max_body_size %d;", limit)) }},
	} {
		t.Run(s.kind, func(t *testing.T) {
			srv := s.start(t)
			m := mountServer(t, srv, MountOptions{})
			big := bytes.Repeat([]byte("0123456789abcdef"), 3*limit/16)
			small := []byte("fits under the limit\n")
			if err := os.WriteFile(m.Path("big.bin"), big, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(m.Path("small.txt"), small, 0o644); err != nil {
				t.Fatal(err)
			}
			wantServerFile(t, srv, "small.txt", small)
			out, code, err := m.TrySync(30 * time.Second)
			t.Logf("cloudmount sync: exit %d, %v:\n%s", code, err, out)
			if code == 0 {
				t.Fatalf("cloudmount sync exits 0 while the server refuses big.bin")
			}
			for _, want := range []string{"big.bin", "413", "refuses uploads"} {
				if !strings.Contains(out, want) {
					t.Errorf("sync's output does not say %q", want)
				}
			}
			st := m.Status(t)
			if len(st.Failed) != 1 || st.Failed[0].Path != "big.bin" || !strings.Contains(st.Failed[0].LastError, "refuses uploads") {
				t.Errorf("status after the 413: %+v", st.Failed)
			}
			if _, err := os.Stat(srv.Path("big.bin")); err == nil {
				t.Errorf("the server has big.bin")
			}
			wantFile(t, m.Path("big.bin"), big)
			m2 := m.Remount(t, false)
			wantFile(t, m2.Path("big.bin"), big)
			if st := m2.Status(t); st.QueuedFiles != 1 {
				t.Errorf("after a remount, %d files queued, want big.bin", st.QueuedFiles)
			}
		})
	}
}
