package integration

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultProxy is a TCP proxy on 127.0.0.1 in front of a server, for tests
// of a network that fails. It can
//   - blackhole: forward nothing in either direction and close nothing,
//     as a cable pulled out or a route gone (new connections are accepted
//     and held the same way);
//   - resume: forward again, including what was held back, as a network
//     that heals before TCP gives up;
//   - cut: reset every connection (RST), as a NAT box or firewall that
//     forgets them;
//   - throttle: forward at most a given rate in each direction of each
//     connection, so that a transfer of a few MiB takes long enough to be
//     caught in the middle.
//
// It is closed by the cleanup of the test that started it.
type faultProxy struct {
	// Port is where it listens on 127.0.0.1.
	Port int

	target string
	ln     net.Listener
	up     atomic.Int64   // bytes forwarded to the server
	down   atomic.Int64   // bytes forwarded to the client
	rate   atomic.Int64   // bytes per second per direction; 0: no limit
	wg     sync.WaitGroup // the accept loop and the connections

	mu         sync.Mutex // protects the following
	changed    *sync.Cond // signalled when blackholed or a connection's closed changes
	blackholed bool
	conns      map[*proxyConn]bool // nil once closed
}

// proxyConn is one client connection and its connection to the server.
type proxyConn struct {
	client, server net.Conn
	closed         bool // protected by faultProxy.mu
}

// startFaultProxy listens on a free port of 127.0.0.1 and forwards every
// connection to target ("host:port").
func startFaultProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{Port: ln.Addr().(*net.TCPAddr).Port, target: target, ln: ln, conns: map[*proxyConn]bool{}}
	p.changed = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

// handle connects one client to the server and forwards both ways. A
// server that refuses the connection gets the client's connection closed.
func (p *faultProxy) handle(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		client.Close()
		return
	}
	pc := &proxyConn{client: client, server: server}
	p.mu.Lock()
	if p.conns == nil { // closed meanwhile
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[pc] = true
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(pc, server, client, &p.up) }()
	go func() { defer wg.Done(); p.pipe(pc, client, server, &p.down) }()
	wg.Wait()
	p.closeConn(pc, false)
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// pipe copies src to dst, holding data back while the proxy is
// blackholed. EOF from src is passed on as a half close; any error ends
// the whole connection.
func (p *faultProxy) pipe(pc *proxyConn, dst, src net.Conn, count *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		chunk := buf
		if r := p.rate.Load(); r > 0 {
			chunk = buf[:min(int64(len(buf)), max(r/20, 1))]
		}
		n, err := src.Read(chunk)
		if n > 0 {
			if !p.gate(pc) {
				return
			}
			if r := p.rate.Load(); r > 0 {
				time.Sleep(time.Duration(int64(n) * int64(time.Second) / r))
			}
			if _, werr := dst.Write(chunk[:n]); werr != nil {
				p.closeConn(pc, false)
				return
			}
			count.Add(int64(n))
		}
		if errors.Is(err, io.EOF) {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
		if err != nil {
			p.closeConn(pc, false)
			return
		}
	}
}

// gate waits while the proxy is blackholed; false when pc was closed.
func (p *faultProxy) gate(pc *proxyConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.blackholed && !pc.closed {
		p.changed.Wait()
	}
	return !pc.closed
}

// closeConn closes both sides of pc, with RST when reset is set.
func (p *faultProxy) closeConn(pc *proxyConn, reset bool) {
	p.mu.Lock()
	already := pc.closed
	pc.closed = true
	p.changed.Broadcast()
	p.mu.Unlock()
	if already {
		return
	}
	for _, c := range []net.Conn{pc.client, pc.server} {
		if tc, ok := c.(*net.TCPConn); ok && reset {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
}

// Blackhole stops forwarding in both directions, closing nothing.
func (p *faultProxy) Blackhole() {
	p.mu.Lock()
	p.blackholed = true
	p.mu.Unlock()
}

// Resume forwards again, starting with what was held back.
func (p *faultProxy) Resume() {
	p.mu.Lock()
	p.blackholed = false
	p.changed.Broadcast()
	p.mu.Unlock()
}

// Cut resets every open connection and returns how many there were. New
// connections are accepted as before.
func (p *faultProxy) Cut() int {
	p.mu.Lock()
	var open []*proxyConn
	for pc := range p.conns {
		if !pc.closed {
			open = append(open, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range open {
		p.closeConn(pc, true)
	}
	return len(open)
}

// Throttle limits each direction of each connection to bytesPerSec; 0
// lifts the limit.
func (p *faultProxy) Throttle(bytesPerSec int64) { p.rate.Store(bytesPerSec) }

// Sent is how many bytes the proxy has forwarded to the server.
func (p *faultProxy) Sent() int64 { return p.up.Load() }

// Received is how many bytes the proxy has forwarded to the client.
func (p *faultProxy) Received() int64 { return p.down.Load() }

// close stops listening, resets every connection and waits for the
// forwarding goroutines.
func (p *faultProxy) close() {
	p.ln.Close()
	p.Resume()
	p.mu.Lock()
	var open []*proxyConn
	for pc := range p.conns {
		open = append(open, pc)
	}
	p.conns = nil // handle closes what connects from now on
	p.mu.Unlock()
	for _, pc := range open {
		p.closeConn(pc, true)
	}
	p.wg.Wait()
}
