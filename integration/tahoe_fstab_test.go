package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testTahoeFstab is the fstab story for a tahoe:ALIAS source, as an
// ordinary user whose ~/.tahoe names the grid's client node (node.url)
// and the directory (private/aliases, 0600), with nothing but
// `user,noauto,_netdev` in the fstab line: `mount ~/cloud` and `umount
// ~/cloud` from the user's shell, through mount(8) and mount.fuse3.
func testTahoeFstab(t *testing.T, g *tahoeGrid) {
	needFstabMounts(t)
	d := g.newDir(t)
	u := addLocalUser(t, true)
	cred := u.Cred()

	node := filepath.Join(u.Home, ".tahoe")
	mkdirOwned(t, filepath.Join(node, "private"), 0o700, cred)
	chownTo(t, node, cred)
	for name, content := range map[string]string{"node.url": g.NodeURL + "\n", "private/aliases": d.Alias + ": " + d.cap + "\n"} {
		f := filepath.Join(node, name)
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		chownTo(t, f, cred)
	}
	mnt := filepath.Join(u.Home, "cloud")
	mkdirOwned(t, mnt, 0o755, cred)
	mountFromFstab(t, u, "tahoe:"+d.Alias, mnt)
	if out, err := asUser(u, u.Home, "sh", "-c", "echo from fstab > "+mnt+"/fstab.txt && cat "+mnt+"/fstab.txt"); err != nil || strings.TrimSpace(out) != "from fstab" {
		t.Errorf("write and read back as %s: %v %q", u.Name, err, out)
	}
	// The capability is in no process's command line.
	if ps, err := exec.Command("ps", "-eo", "args").Output(); err == nil && bytes.Contains(ps, []byte(d.cap)) {
		t.Errorf("the directory's capability is in a command line of ps")
	}
	umountFromFstab(t, u, mnt)
	// umount waits for nothing: the daemon uploads after it; the grid
	// has the file soon after.
	eventually(t, time.Minute, func() error {
		got, err := d.ReadFile("fstab.txt")
		if err != nil {
			return err
		}
		if string(got) != "from fstab\n" {
			return fmt.Errorf("fstab.txt on the grid: %q", got)
		}
		return nil
	})
}
