package tahoe

import (
	"bytes"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a buffer that many goroutines log to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// debugLogger logs everything to w.
func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testConfig is the config of a backend on the fake with cap.
func testConfig(f *fakeNode, cap string, logs io.Writer) Config {
	return Config{NodeURL: f.url(), Cap: cap, Timeout: 5 * time.Second, Logger: debugLogger(logs)}
}

// open opens a backend on the fake with cap, logging to logs; retries of
// collisions wait a millisecond.
func open(t *testing.T, f *fakeNode, cap string, logs io.Writer) *Backend {
	t.Helper()
	b, err := New(t.Context(), testConfig(f, cap, logs))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b.jitter = func() time.Duration { return time.Millisecond }
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// unredacted matches anything shaped like a cap: Redact leaves no "URI:".
var unredacted = regexp.MustCompile(`(?i)URI(:|%3A)[A-Z0-9-]+(:|%3A)`)

// checkNoCaps fails the test if s holds a cap the fake made (whole,
// percent-encoded, or its key alone) or anything shaped like one.
func checkNoCaps(t *testing.T, f *fakeNode, where, s string) {
	t.Helper()
	if m := unredacted.FindString(s); m != "" {
		t.Errorf("%s holds an unredacted cap %q…", where, m[:min(len(m), 16)])
	}
	for _, c := range f.allCaps() {
		fields := strings.Split(c, ":")
		probes := []string{c, url.PathEscape(c), strings.ReplaceAll(c, ":", "%3A")}
		if len(fields) > 2 && len(fields[2]) >= 10 {
			probes = append(probes, fields[2])
		}
		for _, p := range probes {
			if len(p) > 12 && strings.Contains(s, p) {
				t.Errorf("%s holds the cap %s (%q)", where, Redact(c), p[:12])
			}
		}
	}
}
