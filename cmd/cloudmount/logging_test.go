package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPriorityLogger(t *testing.T) {
	type rec struct {
		severity int
		msg      string
	}
	var got []rec
	log := newPriorityLogger(func(s int, m string) error { got = append(got, rec{s, m}); return nil }, slog.LevelInfo)
	log.Debug("hidden")
	log.Info("mounted", "mountpoint", "/home/a/my cloud")
	log.Warn("server capabilities", "notes", "a\nb")
	log.With("backend", "webdav").Error("upload failed", "err", errors.New("503"))
	want := []rec{
		{severityInfo, `mounted mountpoint="/home/a/my cloud"`},
		{severityWarning, `server capabilities notes="a\nb"`},
		{severityError, `upload failed backend=webdav err=503`},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestJournalStreamLogger(t *testing.T) {
	var b bytes.Buffer
	log := journalStreamLogger(&b, slog.LevelDebug)
	log.Debug("request", "op", "LOOKUP")
	log.Error("line\nbreak")
	if want := "<7>request op=LOOKUP\n<3>line\\nbreak\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	f, err := os.CreateTemp(t.TempDir(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv("JOURNAL_STREAM", "")
	if journalStream(f) {
		t.Error("a file without JOURNAL_STREAM taken for the journal")
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	dev, ino := st.Dev, st.Ino
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", dev, ino))
	if !journalStream(f) {
		t.Error("the stream JOURNAL_STREAM names not recognised")
	}
	if journalStream(os.Stdin) {
		t.Error("another file taken for the journal stream")
	}
}

// listenSyslog listens on a unix datagram socket in a temp directory and
// returns its path and a function that reads the next message.
func listenSyslog(t *testing.T, path string) (next func() string, closeIt func()) {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return func() string {
			t.Helper()
			buf := make([]byte, 64<<10)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("read the system log socket: %v", err)
			}
			return string(buf[:n])
		}, func() {
			conn.Close()
			os.Remove(path)
		}
}

func TestSyslogConn(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	next, closeIt := listenSyslog(t, sock)
	var fallback bytes.Buffer
	c, err := dialSyslog(sock, &fallback)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.now = func() time.Time { return time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC) }
	log := newPriorityLogger(c.send, slog.LevelInfo)
	log.Warn("upload failed", "path", "a b")
	want := fmt.Sprintf(`<28>Mar  4 05:06:07 cloudmount[%d]: upload failed path="a b"`, os.Getpid())
	if got := next(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// The log daemon restarts: the next message dials again.
	closeIt()
	next, closeIt = listenSyslog(t, sock)
	log.Info("again")
	if got := next(); !strings.HasSuffix(got, "]: again") || !strings.HasPrefix(got, "<30>") {
		t.Errorf("after a restart of the log daemon: %q", got)
	}
	// Gone for good: the message goes to the fallback.
	closeIt()
	log.Error("lost")
	if !strings.Contains(fallback.String(), "]: lost (not in the system log: ") {
		t.Errorf("fallback has %q", fallback.String())
	}
}

func TestOpenDaemonLog(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "dev-log")
	next, _ := listenSyslog(t, sock)
	cache := filepath.Join(dir, "cache")
	cfg := &mountConfig{Syslog: sock, CacheDir: cache, LogLevel: "warn"}
	log, out, closeLog, err := openDaemonLog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("not at warn level")
	log.Warn("kept")
	if got := next(); !strings.HasSuffix(got, "]: kept") || !strings.HasPrefix(got, "<28>") {
		t.Errorf("system log got %q", got)
	}
	if out.Name() != filepath.Join(cache, crashLogName) {
		t.Errorf("standard error goes to %s, want crash.log in the cache directory", out.Name())
	}
	closeLog()
	if _, err := os.Stat(filepath.Join(cache, daemonLogName)); err == nil {
		t.Error("daemon.log made although the system log was used")
	}

	// A socket nobody listens on: daemon.log, with a warning.
	cfg = &mountConfig{Syslog: filepath.Join(dir, "nobody"), CacheDir: cache, LogLevel: "info"}
	log, out, closeLog, err = openDaemonLog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("here")
	closeLog()
	b, _ := os.ReadFile(filepath.Join(cache, daemonLogName))
	if out.Name() != filepath.Join(cache, daemonLogName) || !regexp.MustCompile(`(?s)level=WARN msg="the system log cannot be reached.*msg=here`).Match(b) {
		t.Errorf("fallback log %s: %q", out.Name(), b)
	}
}

// TestLogPlace: where a background mount logs, from the flags and the
// sockets there are.
func TestLogPlace(t *testing.T) {
	t.Setenv("CLOUDMOUNT_PASSWORD", "pw")
	dir := t.TempDir()
	sock := filepath.Join(dir, "dev-log")
	listenSyslog(t, sock)
	cacheDir := filepath.Join(dir, "cache")
	old := syslogSockets
	t.Cleanup(func() { syslogSockets = old })
	for _, tc := range []struct {
		name    string
		sockets []string
		args    []string
		file    string
		syslog  string
		level   string
	}{
		{"system log", []string{filepath.Join(dir, "none"), sock}, nil, "", sock, "info"},
		{"no system log", []string{filepath.Join(dir, "none")}, nil, filepath.Join(cacheDir, "daemon.log"), "", "info"},
		{"--log-file wins", []string{sock}, []string{"--log-file", "/tmp/x.log", "--log-level", "error"}, "/tmp/x.log", "", "error"},
		{"-f logs to stderr", []string{sock}, []string{"-f", "-o", "log_level=WARN"}, "", "", "WARN"},
		{"-v is debug", []string{sock}, []string{"--log-level", "error", "-v"}, "", sock, "debug"},
		{"--debug is debug", []string{sock}, []string{"--debug"}, "", sock, "debug"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			syslogSockets = tc.sockets
			f, err := parseMountArgs(append([]string{"https://alice@h/", t.TempDir(), "--secrets-file", "", "--cache-dir", cacheDir}, tc.args...))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := resolveMount(f)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.LogFile != tc.file || cfg.Syslog != tc.syslog || cfg.LogLevel != tc.level {
				t.Errorf("log file %q, system log %q, level %q; want %q, %q, %q", cfg.LogFile, cfg.Syslog, cfg.LogLevel, tc.file, tc.syslog, tc.level)
			}
		})
	}
	if _, err := parseMountArgs([]string{"https://h/", "/mnt", "--log-level", "loud"}); err == nil || !strings.Contains(err.Error(), "--log-level must be debug, info, warn or error") {
		t.Errorf("--log-level loud: %v", err)
	}
}

// TestSyslogConnStalled: a log daemon that stops reading costs one
// sendTimeout, then messages go to the fallback at once for a while.
func TestSyslogConnStalled(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	listenSyslog(t, sock) // never read
	var fallback bytes.Buffer
	c, err := dialSyslog(sock, &fallback)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := strings.Repeat("x", 4000)
	start := time.Now()
	for i := 0; i < 2000; i++ {
		c.send(severityInfo, msg)
	}
	if d := time.Since(start); d > sendTimeout+3*time.Second {
		t.Errorf("2000 messages to a stalled log daemon took %v", d)
	}
	if !strings.Contains(fallback.String(), "(not in the system log: the log daemon is not reading)") {
		t.Errorf("the fallback has %d bytes, not the messages that could not be sent", fallback.Len())
	}
}
