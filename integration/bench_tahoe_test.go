//go:build bench

package integration

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The Tahoe-LAFS systems of the benchmark: cloudmount on a directory of
// the harness's grid (newTahoeGrid: an introducer, three storage nodes
// and a client node on 127.0.0.1, 2-of-3 shares), and what users of such
// a grid run today, the client node's own SFTP frontend mounted with
// sshfs, on another directory of the same grid. They take part in the
// workloads that check the server's copy through the grid's web API
// (small files and rsync).

// tahoeBenchUser is the account of the SFTP frontend.
const tahoeBenchUser = "bench"

// tahoeBenchWorkloads are the workloads the Tahoe systems run.
var tahoeBenchWorkloads = []string{"small", "rsync"}

// tahoeSFTP is the client node's SFTP frontend, as the benchmark sets it
// up.
type tahoeSFTP struct {
	// Port is where it listens, on 127.0.0.1.
	Port int
	// Config is an ssh_config file for the clients: host "tahoe-sftp",
	// the user's key, a known_hosts file with the frontend's host key.
	Config string
	// Dir is the grid directory the account's root cap names.
	Dir *tahoeDir
}

// enableSFTP configures the client node's SFTP frontend with a host key
// of its own and an accounts file that maps one user (key login) to the
// cap of root, restarts the client node, and writes an ssh_config for
// the clients. The cap is only in the node's private/accounts (0600).
func (g *tahoeGrid) enableSFTP(t *testing.T, root *tahoeDir) (*tahoeSFTP, error) {
	t.Helper()
	dir := filepath.Join(g.Dir, "sftp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	hostKey, userKey := filepath.Join(dir, "host_key"), filepath.Join(dir, "user_key")
	for _, k := range []string{hostKey, userKey} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cloudmount-bench", "-f", k).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen: %v\n%s", err, out)
		}
	}
	userPub, err := os.ReadFile(userKey + ".pub")
	if err != nil {
		return nil, err
	}
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, err
	}
	// One account a line: NAME KEYTYPE KEY [COMMENT] ROOTCAP.
	accounts := filepath.Join(g.Client.Dir, "private", "accounts")
	line := fmt.Sprintf("%s %s %s\n", tahoeBenchUser, strings.TrimSpace(string(userPub)), root.cap)
	if err := os.WriteFile(accounts, []byte(line), 0o600); err != nil {
		return nil, err
	}
	port := freePort(t)
	cfgFile := filepath.Join(g.Client.Dir, "tahoe.cfg")
	cfg, err := os.ReadFile(cfgFile)
	if err != nil {
		return nil, err
	}
	if regexp.MustCompile(`(?m)^\[sftpd\]`).Match(cfg) {
		return nil, fmt.Errorf("%s has an [sftpd] section already", cfgFile)
	}
	section := fmt.Sprintf("\n[sftpd]\nenabled = true\nport = tcp:%d:interface=127.0.0.1\nhost_pubkey_file = %s\nhost_privkey_file = %s\naccounts.file = private/accounts\n",
		port, hostKey+".pub", hostKey)
	if err := os.WriteFile(cfgFile, append(cfg, section...), 0o600); err != nil {
		return nil, err
	}
	if err := g.restartClient(); err != nil {
		return nil, err
	}
	known := filepath.Join(dir, "known_hosts")
	fields := strings.Fields(string(hostPub))
	if err := os.WriteFile(known, fmt.Appendf(nil, "[127.0.0.1]:%d %s %s\n", port, fields[0], fields[1]), 0o600); err != nil {
		return nil, err
	}
	sshCfg := filepath.Join(dir, "ssh_config")
	conf := fmt.Sprintf("Host tahoe-sftp\n  HostName 127.0.0.1\n  Port %d\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n"+
		"  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  GlobalKnownHostsFile /dev/null\n  BatchMode yes\n",
		port, tahoeBenchUser, userKey, known)
	if err := os.WriteFile(sshCfg, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	// The frontend listens once the node runs; wait for its port.
	deadline := time.Now().Add(60 * time.Second)
	for !portOpen(port) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the SFTP frontend does not listen on port %d after 60s\n%s", port, tailFile(g.Client.Log, 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return &tahoeSFTP{Port: port, Config: sshCfg, Dir: root}, nil
}

// restartClient stops the client node and starts it again with the same
// directory (and web port), then waits until it sees every storage node.
func (g *tahoeGrid) restartClient() error {
	if err := g.Client.stop(); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(g.Client.Dir, "node.url"))
	if err := g.Client.start(); err != nil {
		return err
	}
	if err := waitFor(60*time.Second, g.Client, func() error {
		if _, err := os.Stat(filepath.Join(g.Client.Dir, "node.url")); err != nil {
			return err
		}
		return nil
	}); err != nil {
		return fmt.Errorf("the client node did not start again: %v\n%s", err, tailFile(g.Client.Log, 30))
	}
	return g.waitConnected(tahoeStores, 90*time.Second)
}

// portOpen reports whether something listens on 127.0.0.1:port.
func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// startTahoeBench starts the grid and makes the directories of the Tahoe
// systems: one for cloudmount, one behind the SFTP frontend.
func startTahoeBench(t *testing.T, wantCM, wantSSHFS bool) (cm *tahoeDir, sftp *tahoeSFTP, err error) {
	g := newTahoeGrid(t)
	t.Logf("bench: tahoe grid up in %.1fs (%s)", g.StartedIn.Seconds(), g.Tahoe)
	if wantCM {
		cm = g.newDir(t)
	}
	if wantSSHFS {
		sftp, err = g.enableSFTP(t, g.newDir(t))
	}
	return cm, sftp, err
}

// cloudmountTahoeSystem is cloudmount with default options on a directory
// of the grid.
func cloudmountTahoeSystem(d *tahoeDir, err error) *benchSystem {
	s := &benchSystem{
		ID: "cloudmount-tahoe", Label: "cloudmount", Role: roleCloudmount, Server: serverLabel("tahoe"), kind: kindMount,
		workloads: tahoeBenchWorkloads, grid: d,
		Command: "cloudmount mount tahoe:ALIAS MNT --node-dir CLIENTDIR --cache-dir DIR -f   (default options; a fresh cache directory for every cold mount)",
	}
	switch {
	case err != nil:
		s.Unavailable = err.Error()
		return s
	case d == nil:
		return s
	}
	s.mount = func(t *testing.T, cache string) (*benchMount, error) {
		m, out, err := tryMountTahoe(t, d, tahoeMountOptions{Foreground: true, CacheDir: cache, Args: []string{"--verbose=false"}})
		if err != nil {
			if m != nil {
				out += "\n" + tailFile(m.LogFile, 20)
			}
			return nil, fmt.Errorf("%v\n%s", err, out)
		}
		bm := cloudmountBenchMount(m, cache == "")
		bm.settle = func() error {
			out, code, err := m.TrySync(serverTimeoutBench)
			if err != nil || code != 0 {
				return fmt.Errorf("cloudmount sync: exit %d, %v\n%s", code, err, out)
			}
			return nil
		}
		return bm, nil
	}
	return s
}

// sshfsTahoeSystem is sshfs on the client node's SFTP frontend.
func sshfsTahoeSystem(sftp *tahoeSFTP, err error) *benchSystem {
	s := &benchSystem{
		ID: "sshfs-tahoe", Label: "sshfs", Role: rolePeer, Server: serverLabel("tahoe"), kind: kindMount,
		workloads: tahoeBenchWorkloads,
		Command: "sshfs tahoe-sftp:/ MNT -f -F SSH_CONFIG (default options) on the client node's SFTP frontend " +
			"(tahoe.cfg [sftpd] with a host key and private/accounts: one user, key login, the root cap of a directory of the grid); unmount: fusermount3 -u",
	}
	if err == nil {
		err = lookTools("sshfs", "fusermount3", "ssh-keygen")
	}
	switch {
	case err != nil:
		s.Unavailable = err.Error()
		return s
	case sftp == nil:
		return s
	}
	s.grid = sftp.Dir
	s.mount = func(t *testing.T, cache string) (*benchMount, error) {
		base := t.TempDir()
		mnt := filepath.Join(base, "mnt")
		if err := os.Mkdir(mnt, 0o755); err != nil {
			return nil, err
		}
		cmd := exec.Command("sshfs", "tahoe-sftp:/", mnt, "-f", "-F", sftp.Config)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base, "LANG=C"}
		return mountForeground(t, "sshfs", cmd, mnt, filepath.Join(base, "sshfs.log"))
	}
	return s
}

// gridSmall checks that the directory rel of d on the grid holds all the
// small files at their full size.
func gridSmall(d *tahoeDir, rel string, sz benchSizes) error {
	n := 0
	for i := 0; i < sz.SmallDirs; i++ {
		kids, err := d.List(rel + fmt.Sprintf("/d%02d", i))
		if err != nil {
			continue
		}
		for name, c := range kids {
			if strings.HasPrefix(name, ".") || c.Type != "filenode" || c.Size == nil {
				continue
			}
			if *c.Size == int64(sz.SmallSize) {
				n++
			}
		}
	}
	if n != sz.SmallFiles {
		return fmt.Errorf("the grid has %d of %d small files", n, sz.SmallFiles)
	}
	return nil
}

// gridTree checks that the directory rel of d on the grid has every
// regular file of src with its size: one listing per directory of src.
func gridTree(d *tahoeDir, rel, src string) error {
	missing, total := 0, 0
	var first string
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return err
		}
		sub, _ := filepath.Rel(src, p)
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		var kids map[string]tahoeChild
		listed := false
		for _, f := range ents {
			if !f.Type().IsRegular() {
				continue
			}
			total++
			if !listed {
				kids, _ = d.List(strings.TrimSuffix(rel+"/"+filepath.ToSlash(sub), "/."))
				listed = true
			}
			fi, err := f.Info()
			if err != nil {
				return err
			}
			c, ok := kids[f.Name()]
			if !ok || c.Type != "filenode" || c.Size == nil || *c.Size != fi.Size() {
				missing++
				if first == "" {
					first = filepath.Join(sub, f.Name())
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d files are not (yet) on the grid, e.g. %s", missing, total, first)
	}
	return nil
}

// waitGrid waits until check passes: at once for a mount that returns
// once the grid has the data (sshfs on the SFTP frontend uploads at
// close), after `cloudmount sync` for cloudmount; then every two seconds
// (each check lists directories on the grid, which loads the node).
func waitGrid(m *benchMount, start time.Time, check func() error) (time.Duration, error) {
	if m != nil && m.settle != nil {
		if err := m.settle(); err != nil {
			return 0, err
		}
	}
	deadline := time.Now().Add(serverTimeoutBench)
	for {
		at := time.Now()
		err := check()
		if err == nil {
			return at.Sub(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not on the grid after %v: %v", serverTimeoutBench, err)
		}
		time.Sleep(2 * time.Second)
	}
}
