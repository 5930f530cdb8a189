package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// syslogSockets are where the system log takes messages, in the order they
// are tried: journald's socket for syslog messages, then /dev/log (a link
// to it under systemd; rsyslog's or busybox syslogd's socket elsewhere).
var syslogSockets = []string{"/run/systemd/journal/dev-log", "/dev/log"}

// syslogTag names cloudmount's messages in the system log
// (journalctl -t cloudmount).
const syslogTag = "cloudmount"

// facilityDaemon is syslog's facility for system daemons.
const facilityDaemon = 3

// maxSyslogMessage bounds one message; longer ones are cut (a datagram
// must fit the socket's buffer).
const maxSyslogMessage = 32 << 10

// sendTimeout bounds the wait for a log daemon that does not read: the
// filesystem must not stall on its log.
const sendTimeout = time.Second

// stallPause is how long messages bypass a log daemon that did not read
// within sendTimeout.
const stallPause = 10 * time.Second

// findSyslogSocket returns the first of syslogSockets that is a socket,
// or "" when the system has no log to write to.
func findSyslogSocket() string {
	for _, p := range syslogSockets {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == os.ModeSocket {
			return p
		}
	}
	return ""
}

// describeSyslog says where messages sent to socket can be read.
func describeSyslog(socket string) string {
	if strings.HasPrefix(socket, "/run/systemd/") || isJournalLink(socket) {
		return "the journal (journalctl -t " + syslogTag + ")"
	}
	return "the system log (tag " + syslogTag + ")"
}

// isJournalLink reports whether p is a link into systemd's journal sockets.
func isJournalLink(p string) bool {
	t, err := os.Readlink(p)
	return err == nil && strings.HasPrefix(t, "/run/systemd/")
}

// syslogConn sends messages in the local syslog format to a unix datagram
// socket, dialling it again once when a send fails (the log daemon was
// restarted). What cannot be sent goes to fallback.
type syslogConn struct {
	socket   string
	pid      int
	fallback io.Writer
	now      func() time.Time

	mu   sync.Mutex // protects the following
	conn net.Conn
	// stalledUntil: the log daemon did not read within sendTimeout;
	// until then messages go straight to the fallback.
	stalledUntil time.Time
}

// dialSyslog connects to the log daemon's socket.
func dialSyslog(socket string, fallback io.Writer) (*syslogConn, error) {
	c := &syslogConn{socket: socket, pid: os.Getpid(), fallback: fallback, now: time.Now}
	if err := c.dial(); err != nil {
		return nil, err
	}
	return c, nil
}

// dial (re)connects. c.mu must be held or c not yet shared.
func (c *syslogConn) dial() error {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	conn, err := net.Dial("unixgram", c.socket)
	if err != nil {
		return fmt.Errorf("system log %s: %w", c.socket, err)
	}
	c.conn = conn
	return nil
}

// send writes one message of the given severity: "<PRI>Jan _2 15:04:05
// cloudmount[PID]: msg", as syslog(3) does for the local socket.
func (c *syslogConn) send(severity int, msg string) error {
	if len(msg) > maxSyslogMessage {
		msg = msg[:maxSyslogMessage] + "..."
	}
	line := fmt.Sprintf("<%d>%s %s[%d]: %s", facilityDaemon*8+severity, c.now().Format(time.Stamp), syslogTag, c.pid, msg)
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	if time.Now().Before(c.stalledUntil) {
		err = errors.New("the log daemon is not reading")
	} else {
		if c.conn != nil {
			err = c.write(line)
		}
		if c.conn == nil || err != nil && !isTimeout(err) {
			// Not connected, or the log daemon was restarted: dial again.
			if err = c.dial(); err == nil {
				err = c.write(line)
			}
		}
		if isTimeout(err) {
			c.stalledUntil = time.Now().Add(stallPause)
		}
	}
	if err != nil && c.fallback != nil {
		fmt.Fprintf(c.fallback, "%s (not in the system log: %v)\n", line, err)
	}
	return nil
}

// isTimeout reports whether err is a deadline that passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// write sends one datagram, waiting at most sendTimeout for room in the
// log daemon's queue. c.mu must be held.
func (c *syslogConn) write(line string) error {
	if err := c.conn.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return err
	}
	_, err := io.WriteString(c.conn, line)
	return err
}

// Close closes the connection.
func (c *syslogConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}
