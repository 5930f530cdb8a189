package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/cloudmount/cloudmount/cache"
	"github.com/cloudmount/cloudmount/fs"
	"golang.org/x/sys/unix"
)

// controller is what the control socket serves: the daemon's mount.
type controller interface {
	Status() cache.Status
	Sync(ctx context.Context, progress func(cache.Status)) error // waits until everything queued before the call is on the server; error if an upload failed permanently
	Verify(ctx context.Context, path string, progress func(fs.VerifyProgress)) (fs.VerifyReport, error)
}

// The control protocol: the client sends one controlRequest as a JSON line;
// the daemon answers with JSON lines of controlReply, zero or more of type
// "progress" and then one of type "result", and closes the connection. A
// client that closes its end before the result cancels the request.
const (
	opStatus = "status" // result: Status
	opSync   = "sync"   // progress: Status; result: Status, Error if an upload failed permanently
	opVerify = "verify" // progress: Verify; result: Report, Error if the root could not be read

	replyProgress = "progress" // a line before the result
	replyResult   = "result"   // the last line
)

// controlRequest is what a client asks the daemon.
type controlRequest struct {
	Op   string `json:"op"`             // opStatus, opSync or opVerify
	Path string `json:"path,omitempty"` // verify: relative to the mount root
}

// controlReply is one line of the daemon's answer.
type controlReply struct {
	Type       string             `json:"type"` // replyProgress or replyResult
	Mountpoint string             `json:"mountpoint,omitempty"`
	Status     *cache.Status      `json:"status,omitempty"`
	Verify     *fs.VerifyProgress `json:"verify,omitempty"`
	Report     *fs.VerifyReport   `json:"report,omitempty"`
	Error      string             `json:"error,omitempty"`
}

// Limits of the control socket's server side.
const (
	// controlRequestTimeout bounds the wait for a client's request line.
	controlRequestTimeout = 10 * time.Second
	// controlWriteTimeout bounds one reply line to a client that stopped
	// reading.
	controlWriteTimeout = 30 * time.Second
	// controlMaxRequest is the longest request line accepted.
	controlMaxRequest = 64 << 10
	// controlStopGrace is how long stop lets running requests send their
	// last line before their connections are closed.
	controlStopGrace = 2 * time.Second
)

// controlServer answers requests on a mount's control socket.
type controlServer struct {
	c          controller
	log        *slog.Logger
	mountpoint string
	sock       *controlSocket
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup

	mu    sync.Mutex // protects conns
	conns map[net.Conn]struct{}
}

// startControl listens on the control socket of mountpoint (see
// controlSocketPath) and serves c on it until stop is called. stop closes
// the socket, ends running requests and removes the socket file unless
// another daemon has taken the path over.
func startControl(mountpoint string, c controller, log *slog.Logger) (stop func(), err error) {
	sock, err := listenControl(mountpoint, os.Geteuid(), log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &controlServer{c: c, log: log, mountpoint: sock.mountpoint, sock: sock,
		ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	log.Info("control socket ready", "socket", sock.path)
	s.wg.Add(1)
	go s.serve()
	var once sync.Once
	return func() { once.Do(s.stop) }, nil
}

// serve accepts connections until the listener is closed.
func (s *controlServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.sock.l.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("control socket: accept failed", "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
			conn.Close()
		}()
	}
}

// stop closes the socket and waits for the requests in progress, which are
// cancelled.
func (s *controlServer) stop() {
	s.cancel()
	s.sock.close(s.log)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(controlStopGrace):
	}
	s.mu.Lock()
	for conn := range s.conns {
		conn.Close()
	}
	s.mu.Unlock()
	<-done
}

// handle serves one connection: one request, its progress and its result.
func (s *controlServer) handle(conn net.Conn) {
	if err := checkPeer(conn); err != nil {
		s.log.Warn("control socket: connection refused", "err", err)
		w := &replyWriter{conn: conn}
		w.send(controlReply{Type: replyResult, Error: err.Error()})
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(controlRequestTimeout))
	br := bufio.NewReader(io.LimitReader(conn, controlMaxRequest))
	line, err := br.ReadBytes('\n')
	if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
		s.log.Debug("control socket: no request", "err", err)
		return
	}
	var req controlRequest
	w := &replyWriter{conn: conn, mountpoint: s.mountpoint}
	if err := json.Unmarshal(line, &req); err != nil {
		w.send(controlReply{Type: replyResult, Error: fmt.Sprintf("bad request: %v", err)})
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	// The client closing its end (Ctrl-C, --timeout) cancels the request.
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		cancel()
	}()
	w.failed = cancel
	s.log.Debug("control request", "op", req.Op, "path", req.Path)
	switch req.Op {
	case opStatus:
		st := s.c.Status()
		w.send(controlReply{Type: replyResult, Status: &st})
	case opSync:
		s.sync(ctx, w)
	case opVerify:
		s.verify(ctx, w, req.Path)
	default:
		w.send(controlReply{Type: replyResult, Error: fmt.Sprintf("unknown request %q", req.Op)})
	}
}

// sync serves a sync request.
func (s *controlServer) sync(ctx context.Context, w *replyWriter) {
	st := s.c.Status()
	w.send(controlReply{Type: replyProgress, Status: &st})
	s.log.Info("sync requested", "queued_files", st.QueuedFiles, "queued_bytes", st.QueuedBytes)
	err := s.c.Sync(ctx, func(st cache.Status) {
		w.send(controlReply{Type: replyProgress, Status: &st})
	})
	st = s.c.Status()
	reply := controlReply{Type: replyResult, Status: &st}
	switch {
	case err != nil && s.ctx.Err() != nil:
		reply.Error = "the daemon is stopping; the uploads go on while it drains its queue"
	case err != nil && ctx.Err() != nil:
		s.log.Info("sync abandoned by the client")
		return
	case err != nil:
		reply.Error = err.Error()
		s.log.Warn("sync finished with failures", "err", err)
	default:
		s.log.Info("sync done")
	}
	w.send(reply)
}

// verify serves a verify request.
func (s *controlServer) verify(ctx context.Context, w *replyWriter, p string) {
	p = strings.Trim(path.Clean("/"+p), "/")
	s.log.Info("verify requested", "path", p)
	rep, err := s.c.Verify(ctx, p, func(pr fs.VerifyProgress) {
		w.send(controlReply{Type: replyProgress, Verify: &pr})
	})
	reply := controlReply{Type: replyResult, Report: &rep}
	switch {
	case err != nil && s.ctx.Err() != nil:
		reply.Error = "the daemon is stopping"
	case err != nil && ctx.Err() != nil:
		s.log.Info("verify abandoned by the client", "path", p)
		return
	case err != nil:
		reply.Error = err.Error()
		s.log.Warn("verify failed", "path", p, "err", err)
	default:
		s.log.Info("verify done", "path", p, "checked", rep.Checked, "mismatches", len(rep.Mismatches),
			"errors", len(rep.Errors), "no_hash", len(rep.NoHash), "pending", len(rep.Pending))
		for _, m := range rep.Mismatches {
			s.log.Warn("verify: the server's content differs from the known hash", "path", m.Path, "want", m.Want, "got", m.Got)
		}
	}
	w.send(reply)
}

// replyWriter writes reply lines to one client, each with a deadline.
type replyWriter struct {
	conn       net.Conn
	mountpoint string
	// failed is called when a write fails: the client is gone.
	failed func()

	mu  sync.Mutex // protects err and serialises writes
	err error
}

// send writes one reply line; after a failed write it does nothing.
func (w *replyWriter) send(r controlReply) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	r.Mountpoint = w.mountpoint
	b, err := json.Marshal(r)
	if err == nil {
		_ = w.conn.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
		_, err = w.conn.Write(append(b, '\n'))
	}
	if err != nil {
		w.err = err
		if w.failed != nil {
			w.failed()
		}
	}
}

// checkPeer admits only the daemon's own user and root, whatever the
// socket file's permissions (which already allow no one else).
func checkPeer(conn net.Conn) error {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return errors.New("not a unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	var (
		cred *unix.Ucred
		cerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if me := os.Geteuid(); int(cred.Uid) != me && cred.Uid != 0 {
		return fmt.Errorf("permission denied: uid %d may not use the control socket of uid %d", cred.Uid, me)
	}
	return nil
}
