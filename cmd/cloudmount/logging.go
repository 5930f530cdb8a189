package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// logLevels are the names --log-level takes.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warn": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError,
}

// parseLogLevel reads a --log-level value.
func parseLogLevel(s string) (slog.Level, error) {
	l, ok := logLevels[strings.ToLower(s)]
	if !ok {
		return 0, fmt.Errorf("--log-level must be debug, info, warn or error, not %q", s)
	}
	return l, nil
}

// newLogger logs text records of level and above to w.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// newPriorityLogger logs records of level and above to out, one call per
// record with the syslog severity of its level and the text of the record
// without time and level ("mounted mountpoint=/home/a/cloud ...").
func newPriorityLogger(out func(severity int, msg string) error, level slog.Level) *slog.Logger {
	w := &priorityWriter{out: out}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{} // the journal and syslog stamp records themselves
			}
			return a
		},
	}))
}

// Syslog severities of the slog levels.
const (
	severityError   = 3
	severityWarning = 4
	severityInfo    = 6
	severityDebug   = 7
)

// priorityWriter takes the lines of a slog.TextHandler that writes no time,
// "level=INFO msg=\"text\" key=value ...", and hands each to out as its
// severity and "text key=value ...".
type priorityWriter struct {
	out func(severity int, msg string) error
}

// Write passes one record on; the handler writes one record per call.
func (w *priorityWriter) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	severity := severityInfo
	if rest, ok := strings.CutPrefix(line, "level="); ok {
		name, after, _ := strings.Cut(rest, " ")
		switch {
		case strings.HasPrefix(name, "DEBUG"):
			severity = severityDebug
		case strings.HasPrefix(name, "WARN"):
			severity = severityWarning
		case strings.HasPrefix(name, "ERROR"):
			severity = severityError
		}
		line = after
	}
	if rest, ok := strings.CutPrefix(line, "msg="); ok {
		msg, after := rest, ""
		if q, err := strconv.QuotedPrefix(rest); err == nil {
			if s, err := strconv.Unquote(q); err == nil {
				msg, after = s, rest[len(q):]
			}
		} else if i := strings.IndexByte(rest, ' '); i >= 0 {
			msg, after = rest[:i], rest[i:]
		}
		line = msg + after
	}
	if err := w.out(severity, line); err != nil {
		return 0, err
	}
	return len(p), nil
}

// journalStream reports whether f is the stream systemd connected to the
// journal ($JOURNAL_STREAM names its device and inode), where a "<N>"
// prefix gives a line its severity.
func journalStream(f *os.File) bool {
	dev, ino, ok := strings.Cut(os.Getenv("JOURNAL_STREAM"), ":")
	if !ok {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return strconv.FormatUint(st.Dev, 10) == dev && strconv.FormatUint(st.Ino, 10) == ino
}

// journalStreamLogger logs to a stream connected to the journal: one line
// per record with its severity as a "<N>" prefix, without time. Newlines
// in a record (an error from a server) are written as "\n".
func journalStreamLogger(w io.Writer, level slog.Level) *slog.Logger {
	return newPriorityLogger(func(severity int, msg string) error {
		_, err := fmt.Fprintf(w, "<%d>%s\n", severity, strings.ReplaceAll(msg, "\n", `\n`))
		return err
	}, level)
}
