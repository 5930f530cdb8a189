package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/cloudmount/cloudmount/backends"
)

// maxPacket is pkg/sftp's packet size. Larger ones break uploads to some
// servers (pkg/sftp issue 658); 32 KiB is what every server takes.
const maxPacket = 32768

var connIDs atomic.Int64

// connect opens one SSH connection to the server, through the ProxyJump
// hops if any, and starts SFTP on it. Its errors are meant for the user.
func (b *Backend) connect(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout+b.promptTime)
	defer cancel()
	var chain []*ssh.Client
	closeChain := func() {
		for i := len(chain) - 1; i >= 0; i-- {
			chain[i].Close()
		}
	}
	var via *ssh.Client
	hops := append(append([]*endpoint(nil), b.hops...), b.target)
	for i, e := range hops {
		nc, err := b.dialTCP(ctx, via, e)
		if err != nil {
			closeChain()
			return nil, err
		}
		client, err := b.handshake(ctx, nc, e, i == len(hops)-1)
		if err != nil {
			closeChain()
			return nil, err
		}
		chain = append(chain, client)
		via = client
	}
	c := &conn{
		id:    connIDs.Add(1),
		ssh:   via,
		chain: chain[:len(chain)-1],
		dead:  make(chan struct{}),
	}
	c.lastRx.Store(time.Now().UnixNano())
	sc, err := b.startSFTP(ctx, c)
	if err != nil {
		closeChain()
		return nil, err
	}
	c.sftp = sc
	go func() {
		err := via.Wait()
		c.kill(fmt.Sprintf("closed: %v", err))
	}()
	go c.keepAlive(b.keepAlive)
	return c, nil
}

// dialTCP opens the TCP connection to e, directly or through via.
func (b *Backend) dialTCP(ctx context.Context, via *ssh.Client, e *endpoint) (net.Conn, error) {
	var (
		nc  net.Conn
		err error
	)
	// Each dial has the call's deadline, also where the login may wait
	// for a person (promptTime).
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	switch {
	case via != nil:
		nc, err = via.DialContext(ctx, "tcp", e.addr())
	case b.dialFn != nil:
		nc, err = b.dialFn(ctx, "tcp", e.addr())
	default:
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", e.addr())
	}
	if err != nil {
		return nil, dialError(e, via != nil, err, b.timeout)
	}
	return nc, nil
}

// dialError explains a failed TCP connection.
func dialError(e *endpoint, viaJump bool, err error, timeout time.Duration) error {
	where := e.label()
	if e.alias != e.hostName {
		where += " (" + e.alias + ")"
	}
	if viaJump {
		where += " through the ProxyJump host"
	}
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return backends.Describe(backends.ErrUnavailable, "cannot resolve the host name %s (%s)", dnsErr.Name, dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return backends.Describe(backends.ErrUnavailable, "cannot reach %s: connection refused (is an SSH server running on that port?)", where)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return backends.Describe(backends.ErrUnavailable, "cannot reach %s: no route to host", where)
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return backends.Describe(backends.ErrUnavailable, "cannot reach %s: no answer within %s", where, timeout)
	}
	return backends.Describe(backends.ErrUnavailable, "cannot reach %s: %v", where, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handshake runs the SSH handshake and login on nc, bounded by ctx.
func (b *Backend) handshake(ctx context.Context, nc net.Conn, e *endpoint, target bool) (*ssh.Client, error) {
	check, err := b.hostKeys.check(e)
	if err != nil {
		nc.Close()
		return nil, err
	}
	att := &attempt{}
	methods, closeAgent := b.auth.methods(e, att, target)
	defer closeAgent()
	cfg := &ssh.ClientConfig{
		User:              e.user,
		Auth:              methods,
		HostKeyCallback:   check.callback,
		HostKeyAlgorithms: hostKeyAlgorithms(check.known),
		ClientVersion:     "SSH-2.0-cloudmount",
	}
	type result struct {
		c     ssh.Conn
		chans <-chan ssh.NewChannel
		reqs  <-chan *ssh.Request
		err   error
	}
	done := make(chan result, 1)
	go func() {
		c, chans, reqs, err := ssh.NewClientConn(nc, e.addr(), cfg)
		done <- result{c, chans, reqs, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		nc.Close()
		<-done
		if check.failure != nil {
			return nil, check.failure
		}
		return nil, backends.Describe(backends.ErrUnavailable, "%s did not complete the SSH handshake within %s", e.label(), b.timeout)
	}
	if r.err != nil {
		return nil, b.handshakeError(e, check, att, r.err)
	}
	return ssh.NewClient(r.c, r.chans, r.reqs), nil
}

// handshakeError explains a failed handshake: a refused host key, a failed
// login, or a connection that broke.
func (b *Backend) handshakeError(e *endpoint, check *hostCheck, att *attempt, err error) error {
	msg := err.Error()
	var ke *keyError
	switch {
	case check.failure != nil:
		return check.failure
	case strings.Contains(msg, "no common algorithm for host key") && len(check.known) > 0:
		return check.noCommonAlgorithm()
	case strings.Contains(msg, "unable to authenticate"), strings.Contains(msg, "too many authentication"),
		errors.As(err, &ke),
		// A server that offers keyboard-interactive but then refuses it
		// outright (OpenSSH without PAM) answers with a failure where
		// x/crypto/ssh expects a question: a refused login all the same.
		strings.Contains(msg, "unexpected message type 51"):
		return backends.Describe(backends.ErrAuth, "%s", att.describe(e, b.auth.password != nil))
	case isConnError(err):
		return backends.Describe(backends.ErrUnavailable, "the SSH handshake with %s failed: %v", e.label(), err)
	}
	return backends.Describe(backends.ErrProtocol, "the SSH handshake with %s failed: %v", e.label(), err)
}

// startSFTP opens the sftp subsystem on c.ssh, bounded by ctx. The session
// is set up here rather than by sftp.NewClient so that received data can be
// counted (c.lastRx).
func (b *Backend) startSFTP(ctx context.Context, c *conn) (*sftp.Client, error) {
	type result struct {
		sc  *sftp.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := c.ssh.NewSession()
		if err != nil {
			done <- result{err: err}
			return
		}
		w, err := s.StdinPipe()
		if err != nil {
			done <- result{err: err}
			return
		}
		r, err := s.StdoutPipe()
		if err != nil {
			done <- result{err: err}
			return
		}
		stderr, err := s.StderrPipe()
		if err != nil {
			done <- result{err: err}
			return
		}
		// Unread stderr would use up the channel's window.
		go func() { _, _ = io.Copy(io.Discard, stderr) }()
		if err := s.RequestSubsystem("sftp"); err != nil {
			done <- result{err: fmt.Errorf("%w: %v", errNoSubsystem, err)}
			return
		}
		sc, err := sftp.NewClientPipe(&rxCounter{r: r, c: c}, w,
			sftp.MaxPacketChecked(maxPacket),
			sftp.UseConcurrentWrites(true),
			sftp.UseConcurrentReads(true))
		done <- result{sc, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		c.ssh.Close()
		<-done
		return nil, backends.Describe(backends.ErrUnavailable, "%s did not start SFTP within %s", b.hostPort, b.timeout)
	}
	if r.err != nil {
		c.ssh.Close()
		if errors.Is(r.err, errNoSubsystem) {
			return nil, backends.Describe(backends.ErrUnsupported, "%s does not offer SFTP (the sftp subsystem was refused)", b.hostPort)
		}
		return nil, backends.Describe(backends.ErrProtocol, "starting SFTP on %s failed: %v", b.hostPort, r.err)
	}
	return r.sc, nil
}

var errNoSubsystem = errors.New("sftp subsystem refused")
