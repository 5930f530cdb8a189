package sftp

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// stalledBackend is a backend whose connections go through a stallDialer.
func stalledBackend(t *testing.T, timeout time.Duration) (*Backend, *testServer, *stallDialer) {
	t.Helper()
	s := newTestServer(t, withExec)
	c := newClient(t)
	c.trust(t, s)
	d := &stallDialer{}
	cfg := c.config(s)
	cfg.Timeout = timeout
	cfg.Dial = d.dial
	cfg.Connections = 2
	return open(t, cfg), s, d
}

func TestStalledServer(t *testing.T) {
	const timeout = time.Second
	// What a call may take past its timeout: scheduling on a loaded
	// machine under -race, never another timeout.
	const slack = 2 * time.Second
	b, _, d := stalledBackend(t, timeout)
	ctx := context.Background()
	put(t, b, "f", "some content")
	put(t, b, "g", "more")
	mode := os.FileMode(0o600)
	r, err := b.Read(ctx, "f", 0, -1) // open before the stall
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	d.stalled.Store(true)
	ops := []struct {
		name string
		fn   func() error
	}{
		{"Stat", func() error { _, err := b.Stat(ctx, "f"); return err }},
		{"read stream", func() error { _, err := io.ReadAll(r); return err }},
		{"List", func() error { _, err := b.List(ctx, ""); return err }},
		{"Read", func() error {
			r, err := b.Read(ctx, "f", 0, -1)
			if err == nil {
				_, err = io.ReadAll(r)
				r.Close()
			}
			return err
		}},
		{"Put", func() error {
			_, err := b.Put(ctx, "h", strings.NewReader("x"), 1, backends.PutOptions{})
			return err
		}},
		{"Mkdir", func() error { return b.Mkdir(ctx, "d") }},
		{"Rename", func() error { return b.Rename(ctx, "g", "g2", true) }},
		{"Remove", func() error { return b.Remove(ctx, "g") }},
		{"SetMeta", func() error { _, err := b.SetMeta(ctx, "f", backends.Meta{Mode: &mode}, ""); return err }},
		{"Quota", func() error { _, err := b.Quota(ctx); return err }},
		{"SHA256", func() error { _, err := b.SHA256(ctx, "f"); return err }},
		{"Symlink", func() error { _, err := b.Symlink(ctx, "f", "l"); return err }},
	}
	for _, op := range ops {
		start := time.Now()
		err := op.fn()
		took := time.Since(start)
		if !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("%s during a stall: %v", op.name, err)
		}
		if took > timeout+slack {
			t.Errorf("%s took %s", op.name, took)
		}
		t.Logf("%s: %s: %v", op.name, took.Round(time.Millisecond), err)
	}

	// concurrent calls during the stall all return too
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if _, err := b.Stat(ctx, "f"); !errors.Is(err, backends.ErrUnavailable) {
				t.Errorf("concurrent Stat: %v", err)
			}
			if took := time.Since(start); took > timeout+slack {
				t.Errorf("concurrent Stat took %s", took)
			}
		}()
	}
	wg.Wait()

	d.stalled.Store(false)
	deadline := time.Now().Add(15 * time.Second)
	for {
		e, err := b.Stat(ctx, "f")
		if err == nil {
			if e.Size != int64(len("some content")) {
				t.Fatalf("entry %+v", e)
			}
			break
		}
		if !errors.Is(err, backends.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("no reconnect after the stall: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := readAll(t, b, "f", 0, -1); got != "some content" {
		t.Fatalf("read after reconnect: %q", got)
	}
}

func TestCallerCancelDoesNotKillConnection(t *testing.T) {
	b, _, d := stalledBackend(t, 2*time.Second)
	put(t, b, "f", "x")
	d.stalled.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err := b.Stat(ctx, "f")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Stat: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("cancelled Stat took %s", took)
	}
	d.stalled.Store(false)
	// the call ends once the server answers; the connection lives on
	if _, err := b.Stat(context.Background(), "f"); err != nil {
		t.Fatal(err)
	}
	b.pool.mu.Lock()
	n := len(b.pool.conns)
	b.pool.mu.Unlock()
	if n == 0 {
		t.Fatal("no connection left")
	}
}

func TestCallerDeadline(t *testing.T) {
	b, _, d := stalledBackend(t, 5*time.Second)
	put(t, b, "f", "x")
	d.stalled.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := b.Stat(ctx, "f")
	if !errors.Is(err, backends.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stat: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Stat took %s", took)
	}
	d.stalled.Store(false)
}

func TestKeepAliveDetectsDeadLink(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	d := &stallDialer{}
	cfg := c.config(s)
	cfg.Dial = d.dial
	cfg.Connections = 1
	cfg.KeepAlive = 100 * time.Millisecond
	b := open(t, cfg)
	b.pool.mu.Lock()
	conns := append([]*conn(nil), b.pool.conns...)
	b.pool.mu.Unlock()
	if len(conns) != 1 {
		t.Fatalf("%d connections", len(conns))
	}
	conn := conns[0]
	d.stalled.Store(true)
	select {
	case <-conn.dead:
		if r := conn.deathReason(); !strings.Contains(r, "keep-alive") {
			t.Fatalf("reason %q", r)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a dead link went unnoticed")
	}
	d.stalled.Store(false)
}

func TestStreamSurvivesOtherConnection(t *testing.T) {
	b, _ := newBackend(t)
	data := strings.Repeat("0123456789", 300000)
	put(t, b, "big", data)
	r, err := b.Read(context.Background(), "big", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	stream := r.(*reader).s.c
	// Let the pool grow, then kill every other connection.
	for range 5 {
		if _, err := b.Stat(context.Background(), "big"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.pool.mu.Lock()
	conns := append([]*conn(nil), b.pool.conns...)
	b.pool.mu.Unlock()
	killed := 0
	for _, c := range conns {
		if c != stream {
			c.kill("test")
			killed++
		}
	}
	if killed == 0 {
		t.Fatal("the pool did not grow")
	}
	rest, err := io.ReadAll(r)
	if err != nil || string(buf)+string(rest) != data {
		t.Fatalf("stream after another connection died: %d bytes, %v", len(rest), err)
	}
}

func TestServerDown(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	cfg := c.config(s)
	cfg.Connections = 1
	b := open(t, cfg)
	s.ln.Close()
	b.pool.mu.Lock()
	conns := append([]*conn(nil), b.pool.conns...)
	b.pool.mu.Unlock()
	for _, c := range conns {
		c.kill("test")
	}
	// the first call tries to connect and fails; the next fail at once
	for i := range 3 {
		start := time.Now()
		_, err := b.Stat(context.Background(), "")
		if !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("Stat %d: %v", i, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("Stat %d took %s", i, took)
		}
	}
}

// gatedReader gives first bytes, then waits for open before giving the
// rest.
type gatedReader struct {
	first, rest []byte
	reached     chan struct{}
	open        chan struct{}
	once        bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if len(g.first) > 0 {
		n := copy(p, g.first)
		g.first = g.first[n:]
		return n, nil
	}
	if !g.once {
		g.once = true
		close(g.reached)
		<-g.open
	}
	if len(g.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.rest)
	g.rest = g.rest[n:]
	return n, nil
}

func TestTempFileRemovedAfterReconnect(t *testing.T) {
	b, s, d := stalledBackend(t, time.Second)
	g := &gatedReader{
		first:   make([]byte, 200<<10),
		rest:    make([]byte, 4<<20),
		reached: make(chan struct{}),
		open:    make(chan struct{}),
	}
	size := int64(len(g.first) + len(g.rest))
	errc := make(chan error, 1)
	go func() {
		_, err := b.Put(context.Background(), "f", g, size, backends.PutOptions{})
		errc <- err
	}()
	<-g.reached
	d.stalled.Store(true)
	close(g.open)
	if err := <-errc; !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Put during a stall: %v", err)
	}
	temps := func() []string {
		var out []string
		ents, _ := os.ReadDir(s.dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), UploadPrefix) {
				out = append(out, e.Name())
			}
		}
		return out
	}
	if len(temps()) != 1 {
		t.Fatalf("temporary files during the stall: %v", temps())
	}
	d.stalled.Store(false)
	deadline := time.Now().Add(20 * time.Second)
	for len(temps()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("temporary file left after reconnecting: %v", temps())
		}
		_, _ = b.Stat(context.Background(), "")
		time.Sleep(50 * time.Millisecond)
	}
}
