package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The Tahoe-LAFS grid of the Tahoe tests: an introducer, three storage
// nodes and one client node, all on 127.0.0.1, started once per test
// binary run by TestTahoe (newTahoeGrid) and stopped by its cleanup. Every
// test gets a fresh directory under the grid's root directory and an alias
// for it in the client's private/aliases (tahoeGrid.newDir).

// tahoeShares are the grid's encoding parameters: any 2 of 3 shares
// rebuild a file, and an upload needs shares on 3 servers.
const (
	tahoeNeeded = 2
	tahoeHappy  = 3
	tahoeTotal  = 3
	tahoeStores = 3 // storage nodes
)

// tahoeVersion is the tahoe-lafs that `make tahoe-venv` installs.
const tahoeVersion = "1.20.0"

// tahoeProgram finds the tahoe command: $CLOUDMOUNT_TAHOE (which `make
// test` exports), else tahoe on $PATH, else the virtualenv that `make
// tahoe-venv` makes beside Go's build cache (so that a plain `go test`
// finds it too).
func tahoeProgram(t testing.TB) string {
	t.Helper()
	env := os.Getenv("CLOUDMOUNT_TAHOE")
	isExec := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
	}
	if env != "" && isExec(env) {
		return env
	}
	if p, err := exec.LookPath("tahoe"); err == nil {
		return p
	}
	venv := ""
	if out, err := exec.Command("go", "env", "GOCACHE").Output(); err == nil && filepath.IsAbs(strings.TrimSpace(string(out))) {
		venv = filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "cloudmount-tahoe-venv-"+tahoeVersion, "bin", "tahoe")
		if isExec(venv) {
			return venv
		}
	}
	if env != "" {
		need(t, "CLOUDMOUNT_TAHOE=%s is not an executable, and there is no tahoe on $PATH or in %s (`make tahoe-venv` installs tahoe-lafs %s into a virtualenv)", env, venv, tahoeVersion)
	}
	need(t, "tahoe (tahoe-lafs) is not installed: not on $PATH, not in %s; `make tahoe-venv` installs tahoe-lafs %s into a virtualenv (and `make test` does)", venv, tahoeVersion)
	return ""
}

// tahoeNode is one node of the grid, a `tahoe run` process that the
// harness started.
type tahoeNode struct {
	// Name is the node's nickname and directory name ("intro", "s1", "client").
	Name string
	// Dir is the node directory.
	Dir string
	// Log is the output of `tahoe run`.
	Log string

	tahoe  string
	proc   *proc
	frozen bool // stopped with SIGSTOP by FreezeStorage
}

// start runs `tahoe run` on the node directory in the background.
func (n *tahoeNode) start() error {
	out, err := os.OpenFile(n.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	// --allow-stdin-close: since 1.19 `tahoe run` ends when its standard
	// input closes, and a background process has /dev/null.
	cmd := exec.Command(n.tahoe, "run", "--allow-stdin-close", n.Dir)
	cmd.Stdout, cmd.Stderr = out, out
	p, err := startProc("tahoe run "+n.Name, cmd)
	if err != nil {
		return err
	}
	n.proc = p
	return nil
}

// running reports whether the node's process runs.
func (n *tahoeNode) running() bool { return n.proc != nil && !n.proc.exited() }

// stop ends the node's process (SIGTERM; `tahoe run` has no stop command).
func (n *tahoeNode) stop() error {
	if n.proc == nil {
		return nil
	}
	if n.frozen && n.running() {
		_ = syscall.Kill(n.proc.pid(), syscall.SIGCONT)
		n.frozen = false
	}
	return n.proc.stop(20 * time.Second)
}

// tahoeGrid is the grid that the Tahoe tests share.
type tahoeGrid struct {
	// Tahoe is the tahoe program.
	Tahoe string
	// Dir holds the node directories and their logs.
	Dir string
	// Introducer, Storage and Client are the nodes.
	Introducer *tahoeNode
	Storage    []*tahoeNode
	Client     *tahoeNode
	// NodeURL is the client's web API, "http://127.0.0.1:PORT/" (node.url).
	NodeURL string
	// StartedIn is how long the grid took to start, until the client saw
	// every storage node and the root directory existed.
	StartedIn time.Duration

	root   string // the root directory's write cap
	http   *http.Client
	mu     sync.Mutex // private/aliases, nextID, events
	nextID int
	events []string // changes of the client's storage connections
	halt   chan struct{}
}

// newTahoeGrid creates and starts the grid in a temporary directory of t
// (TestTahoe) and waits until the client node is connected to all three
// storage nodes; then it makes the root directory under the alias "grid".
// t.Cleanup stops every node.
func newTahoeGrid(t *testing.T) *tahoeGrid {
	t.Helper()
	start := time.Now()
	g := &tahoeGrid{Tahoe: tahoeProgram(t), Dir: t.TempDir(), http: &http.Client{Timeout: 2 * time.Minute}}
	t.Cleanup(func() { g.stopAll(t) })

	node := func(name string) *tahoeNode {
		return &tahoeNode{Name: name, Dir: filepath.Join(g.Dir, name), Log: filepath.Join(g.Dir, name+".log"), tahoe: g.Tahoe}
	}
	g.Introducer, g.Client = node("intro"), node("client")
	for i := 1; i <= tahoeStores; i++ {
		g.Storage = append(g.Storage, node(fmt.Sprintf("s%d", i)))
	}
	// All nodes are created at once (each `tahoe create-*` is a second of
	// Python start-up); the introducer's fURL, known only once it runs, is
	// written into the others' private/introducers.yaml afterwards.
	// tub.port may not be 0, so the ports are picked here, on 127.0.0.1
	// only (--port with an interface, and --location to match).
	shares := []string{fmt.Sprintf("--shares-needed=%d", tahoeNeeded), fmt.Sprintf("--shares-happy=%d", tahoeHappy), fmt.Sprintf("--shares-total=%d", tahoeTotal)}
	listen := func() []string {
		p := freePort(t)
		return []string{fmt.Sprintf("--port=tcp:%d:interface=127.0.0.1", p), fmt.Sprintf("--location=tcp:127.0.0.1:%d", p)}
	}
	webPort := freePort(t)
	creates := map[*tahoeNode][]string{
		g.Introducer: append([]string{"create-introducer"}, listen()...),
		g.Client: append([]string{"create-client", "--nickname=client", fmt.Sprintf("--webport=tcp:%d:interface=127.0.0.1", webPort)},
			shares...),
	}
	for _, s := range g.Storage {
		creates[s] = append(append([]string{"create-node", "--nickname=" + s.Name, "--webport=none"}, listen()...), shares...)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(creates))
	for n, args := range creates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := runCmd("", 2*time.Minute, g.Tahoe, append(args, n.Dir)...)
			if err != nil {
				errs <- fmt.Errorf("tahoe %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		need(t, "%v", err)
	}
	// Storage nodes reserve 1 GB by default and refuse shares on a fuller
	// disk; no Tor, no I2P (create-node sets neither up).
	for _, s := range g.Storage {
		cfg := filepath.Join(s.Dir, "tahoe.cfg")
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b = regexp.MustCompile(`(?m)^reserved_space = .*$`).ReplaceAll(b, []byte("reserved_space = 0"))
		if err := os.WriteFile(cfg, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if err := g.Introducer.start(); err != nil {
		t.Fatal(err)
	}
	furlFile := filepath.Join(g.Introducer.Dir, "private", "introducer.furl")
	var furl string
	if err := waitFor(60*time.Second, g.Introducer, func() error {
		b, err := os.ReadFile(furlFile)
		if furl = strings.TrimSpace(string(b)); err != nil || !strings.HasPrefix(furl, "pb://") {
			return fmt.Errorf("no fURL in %s yet", furlFile)
		}
		return nil
	}); err != nil {
		need(t, "the introducer did not start: %v\n%s", err, tailFile(g.Introducer.Log, 30))
	}
	introducers := fmt.Sprintf("introducers:\n  default:\n    furl: %s\n", furl)
	for _, n := range append([]*tahoeNode{g.Client}, g.Storage...) {
		if err := os.WriteFile(filepath.Join(n.Dir, "private", "introducers.yaml"), []byte(introducers), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	urlFile := filepath.Join(g.Client.Dir, "node.url")
	if err := waitFor(60*time.Second, g.Client, func() error {
		b, err := os.ReadFile(urlFile)
		if g.NodeURL = strings.TrimSpace(string(b)); err != nil || g.NodeURL == "" {
			return fmt.Errorf("no %s yet", urlFile)
		}
		return nil
	}); err != nil {
		need(t, "the client node did not start: %v\n%s", err, tailFile(g.Client.Log, 30))
	}
	if !strings.HasSuffix(g.NodeURL, "/") {
		g.NodeURL += "/"
	}
	if err := g.waitConnected(tahoeStores, 90*time.Second); err != nil {
		need(t, "%v\n%s", err, g.logs())
	}
	root, err := g.mkdirUnlinked()
	if err != nil {
		t.Fatalf("create the root directory: %v\n%s", err, g.logs())
	}
	g.root = root
	g.addAlias(t, "grid", root)
	g.StartedIn = time.Since(start)
	g.halt = make(chan struct{})
	go g.watch()
	return g
}

// watch records every change of the client node's storage connections
// (twice a second) until stopAll, for connectionEvents.
func (g *tahoeGrid) watch() {
	last := map[string]string{}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-g.halt:
			return
		case <-tick.C:
		}
		st, err := g.servers()
		if err != nil {
			continue
		}
		for name, status := range st {
			connected := strings.HasPrefix(strings.ToLower(status), "connected")
			was, seen := last[name]
			wasConnected := strings.HasPrefix(strings.ToLower(was), "connected")
			if !seen || connected != wasConnected {
				g.mu.Lock()
				g.events = append(g.events, fmt.Sprintf("%s %s: %.60s", time.Now().Format("15:04:05.0"), name, status))
				g.mu.Unlock()
			}
			last[name] = status
		}
	}
}

// connectionEvents are the changes of the client's storage connections
// since the grid started.
func (g *tahoeGrid) connectionEvents() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.events...)
}

// waitFor polls check until it succeeds, the node's process ends, or
// timeout passes.
func waitFor(timeout time.Duration, n *tahoeNode, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		switch {
		case err == nil:
			return nil
		case !n.running():
			return fmt.Errorf("tahoe run %s ended: %v (%v)", n.Name, n.proc.waitErr, err)
		case time.Now().After(deadline):
			return fmt.Errorf("after %v: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopAll stops every node that runs, the client first.
func (g *tahoeGrid) stopAll(t *testing.T) {
	if g.halt != nil {
		close(g.halt)
	}
	for _, n := range append(append([]*tahoeNode{g.Client}, g.Storage...), g.Introducer) {
		if n == nil {
			continue
		}
		if err := n.stop(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if t.Failed() {
		t.Logf("tahoe node logs:\n%s", g.logs())
	}
}

// logs are the tails of the nodes' logs, for failure messages.
func (g *tahoeGrid) logs() string {
	var b strings.Builder
	for _, n := range append(append([]*tahoeNode{g.Introducer}, g.Storage...), g.Client) {
		if n != nil {
			fmt.Fprintf(&b, "--- %s (tail):\n%s\n", n.Log, tailFile(n.Log, 15))
		}
	}
	return b.String()
}

// servers maps the nickname of each storage server the client node knows
// to its connection status, from the welcome page (GET /?t=json).
func (g *tahoeGrid) servers() (map[string]string, error) {
	body, code, err := g.do(http.MethodGet, g.NodeURL+"?t=json", nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /?t=json: %d %s", code, clip(body))
	}
	var welcome struct {
		Servers []struct {
			Nickname         string `json:"nickname"`
			ConnectionStatus string `json:"connection_status"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(body, &welcome); err != nil {
		return nil, fmt.Errorf("GET /?t=json: %v", err)
	}
	st := map[string]string{}
	for _, s := range welcome.Servers {
		st[s.Nickname] = s.ConnectionStatus
	}
	return st, nil
}

// connected counts the storage servers the client node is connected to
// now: a connection_status that starts with "connected" (HTTPS storage)
// or "Connected to" (Foolscap).
func (g *tahoeGrid) connected() (int, error) {
	st, err := g.servers()
	n := 0
	for _, status := range st {
		if strings.HasPrefix(strings.ToLower(status), "connected") {
			n++
		}
	}
	return n, err
}

// waitConnected waits until the client is connected to exactly want
// storage servers.
func (g *tahoeGrid) waitConnected(want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := g.connected()
		if err == nil && n == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the client node is connected to %d storage servers after %v, want %d (%v)", n, timeout, want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// StopStorage stops storage node i (0-based) and waits until the client
// node sees it gone. Its shares stay on its disk; StartStorage brings it
// back.
func (g *tahoeGrid) StopStorage(t testing.TB, i int) {
	t.Helper()
	if err := g.Storage[i].stop(); err != nil {
		t.Fatal(err)
	}
	if err := g.waitConnected(g.storageRunning(), 60*time.Second); err != nil {
		t.Fatalf("after stopping %s: %v", g.Storage[i].Name, err)
	}
}

// StartStorage starts a storage node stopped by StopStorage again (same
// node directory and port) and waits until the client node is connected
// to every running storage node.
func (g *tahoeGrid) StartStorage(t testing.TB, i int) {
	t.Helper()
	n := g.Storage[i]
	if n.running() {
		t.Fatalf("StartStorage: %s runs", n.Name)
	}
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	if err := g.waitConnected(g.storageRunning(), 3*time.Minute); err != nil {
		t.Fatalf("after starting %s again: %v\n%s", n.Name, err, g.logs())
	}
}

// FreezeStorage stops storage node i with SIGSTOP: it keeps its port and
// connections but answers nothing, as a hung server does. ThawStorage (or
// the cleanup) lets it go on.
func (g *tahoeGrid) FreezeStorage(t testing.TB, i int) {
	t.Helper()
	n := g.Storage[i]
	if !n.running() {
		t.Fatalf("FreezeStorage: %s does not run", n.Name)
	}
	if err := syscall.Kill(n.proc.pid(), syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s (pid %d): %v", n.Name, n.proc.pid(), err)
	}
	n.frozen = true
	t.Cleanup(func() { g.ThawStorage(t, i) })
}

// ThawStorage sends SIGCONT to a storage node frozen by FreezeStorage; a
// node that is not frozen is left alone.
func (g *tahoeGrid) ThawStorage(t testing.TB, i int) {
	t.Helper()
	n := g.Storage[i]
	if !n.frozen {
		return
	}
	n.frozen = false
	if n.running() {
		if err := syscall.Kill(n.proc.pid(), syscall.SIGCONT); err != nil {
			t.Errorf("SIGCONT %s (pid %d): %v", n.Name, n.proc.pid(), err)
		}
	}
}

// storageRunning counts the storage nodes whose process runs.
func (g *tahoeGrid) storageRunning() int {
	n := 0
	for _, s := range g.Storage {
		if s.running() {
			n++
		}
	}
	return n
}
