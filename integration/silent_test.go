package integration

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// silentTimeout is the --timeout of the mounts that meet a silent server.
const silentTimeout = 3 * time.Second

// TestSilentServer puts a server behind the fault proxy and blackholes
// it (connections accepted and held, nothing answered: a server that
// hangs, a route gone), as a desktop user meets it in a file manager:
//   - the first call that meets it waits one --timeout, not more;
//   - after that, a folder seen before lists from the cache, a file read
//     before reads from the cache, df answers, and a stat of thirty names
//     in a folder never listed fails at once (not thirty timeouts in a
//     row); a new file is written and queued; status says offline;
//   - once the server answers again the mount is online within seconds,
//     without a user's call, and `cloudmount sync` puts the new file on
//     the server.
func TestSilentServer(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		warm := []byte("read before the server went silent\n")
		srv.WriteFile(t, "warm.txt", warm, time.Time{})
		var cold []string
		for i := range 30 {
			srv.WriteFile(t, fmt.Sprintf("seen/f%02d", i), []byte("seen"), time.Time{})
			srv.WriteFile(t, fmt.Sprintf("cold/f%02d", i), []byte("cold"), time.Time{})
			cold = append(cold, fmt.Sprintf("cold/f%02d", i))
		}
		u, err := url.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		proxy := startFaultProxy(t, u.Host)
		u.Host = fmt.Sprintf("127.0.0.1:%d", proxy.Port)
		const dirCache = 2 * time.Second
		m := mountServer(t, srv, MountOptions{URL: u.String(), Args: []string{
			"--timeout", silentTimeout.String(), "--dir-cache-time", dirCache.String()}})
		wantFile(t, m.Path("warm.txt"), warm)
		if n := len(readDirNames(t, m.Path("seen"))); n != 30 {
			t.Fatalf("seen/ lists %d names, want 30", n)
		}
		time.Sleep(dirCache + 500*time.Millisecond) // the listings are old now

		proxy.Blackhole()
		first := withinLimit(t, m, silentTimeout+3*time.Second, "ls", "-l", m.Path("seen"))
		t.Logf("FIGURE: %s: the first call to meet a silent server (ls -l of a folder seen before) took %.1fs (--timeout %s)",
			srv.Kind, first.took.Seconds(), silentTimeout)
		if first.err != nil || strings.Count(first.out, "\n") < 30 {
			t.Errorf("ls -l of a folder seen before, server silent: %v\n%s", first.err, first.out)
		}

		quick := 2 * time.Second
		for _, op := range []struct {
			name string
			args []string
			want []byte // output a success must give; nil: anything
			must bool
		}{
			{"ls -l of a folder seen before", []string{"ls", "-l", m.Path("seen")}, nil, true},
			{"cat of a file read before", []string{"cat", m.Path("warm.txt")}, warm, true},
			{"df", []string{"df", m.Dir}, nil, true},
			{"ls -l of the root", []string{"ls", "-l", m.Dir}, nil, true},
			{"stat of 30 names in a folder never listed", append([]string{"stat", "-c", "%n"}, prefixed(m.Dir+"/", cold)...), nil, false},
			{"write a new file", []string{"sh", "-c", "echo 'written while the server is silent' > " + shellQuote(m.Path("seen/new.txt"))}, []byte{}, true},
		} {
			res := withinLimit(t, m, silentTimeout+3*time.Second, op.args[0], op.args[1:]...)
			line, _, _ := strings.Cut(strings.TrimSpace(res.out), "\n")
			t.Logf("server silent: %s: %v after %.2fs: %s", op.name, res.err, res.took.Seconds(), line)
			switch {
			case res.took > quick:
				t.Errorf("%s took %.1fs with the server silent; after the first timeout, want at most %s", op.name, res.took.Seconds(), quick)
			case res.err != nil && op.must:
				t.Errorf("%s fails with the server silent: %v\n%s", op.name, res.err, res.out)
			case res.err == nil && op.want != nil && !bytes.Equal([]byte(res.out), op.want):
				t.Errorf("%s gives %q, want %q", op.name, clip([]byte(res.out)), clip(op.want))
			}
		}
		if st := m.Status(t); st.Online {
			t.Errorf("status says online while the server is silent:\n%s", st)
		}

		proxy.Resume()
		back := time.Now()
		eventually(t, 20*time.Second, func() error {
			if st := m.Status(t); !st.Online {
				return fmt.Errorf("status %.0fs after the server answers again: offline", time.Since(back).Seconds())
			}
			return nil
		})
		t.Logf("FIGURE: %s: online again %.1fs after the server answers, with no call of a user", srv.Kind, time.Since(back).Seconds())
		m.Sync(t)
		wantServerFile(t, srv, "seen/new.txt", []byte("written while the server is silent\n"))
		wantFile(t, m.Path("cold/f07"), []byte("cold"))
	})
}

// prefixed returns each of names with prefix before it.
func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}
