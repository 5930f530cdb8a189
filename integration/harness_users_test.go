package integration

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"testing"
)

// LocalUser is a throwaway local account that a test made, removed (with
// its home) by t.Cleanup.
type LocalUser struct {
	Name string
	UID  int
	GID  int
	// Home is the home directory in the password database.
	Home string
}

// Cred runs a command as the user.
func (u LocalUser) Cred() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}
}

// addLocalUser makes a local user with a random name: with a home made by
// useradd under /home when withHome is set, else with /nonexistent as home.
// Register it before the mounts it uses, so that its cleanup runs after
// theirs (userdel refuses a user whose processes still run).
func addLocalUser(t *testing.T, withHome bool) LocalUser {
	t.Helper()
	needRoot(t)
	useradd, userdel := needTool(t, "useradd"), needTool(t, "userdel")
	name := "cmt" + randomHex(t, 4)
	args := []string{"-U", "-s", "/bin/sh"}
	if withHome {
		args = append(args, "-m")
	} else {
		args = append(args, "-M", "-d", "/nonexistent")
	}
	if out, err := exec.Command(useradd, append(args, name)...).CombinedOutput(); err != nil {
		need(t, "useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		args := []string{name}
		if withHome {
			args = []string{"-r", name}
		}
		// -r also removes the mail spool, which useradd may not have made.
		if out, err := exec.Command(userdel, args...).CombinedOutput(); err != nil && !bytes.Contains(out, []byte("mail spool")) {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s just made: %v", name, err)
	}
	lu := LocalUser{Name: name, Home: u.HomeDir}
	lu.UID, _ = strconv.Atoi(u.Uid)
	lu.GID, _ = strconv.Atoi(u.Gid)
	return lu
}

// asUser runs a command as u in dir with a plain environment (C locale,
// so that error messages can be matched) and returns its combined output.
func asUser(u LocalUser, dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LANG=C", "LC_ALL=C", "HOME=" + u.Home}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Cred()}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// traversable makes dirs enterable by every user, so that another user can
// reach a mountpoint made under t.TempDir (which is 0700).
func traversable(t testing.TB, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}
