package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the master side for the test, the
// slave side for the command.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// runOnTerminal runs cmd in a session of its own with a pseudo-terminal
// as its controlling terminal, stdin, stdout and stderr, types the next
// of answers (and Enter) each time its output shows prompt once more, and
// returns everything it printed once it exits. A command still running
// after timeout (it asks more often than there are answers) is killed.
func runOnTerminal(cmd *exec.Cmd, prompt string, answers []string, timeout time.Duration) (string, error) {
	master, slave, err := openPTY()
	if err != nil {
		return "", err
	}
	defer master.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	slave.Close()
	if err != nil {
		return "", err
	}
	var (
		mu  sync.Mutex
		out strings.Builder
	)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		answered := 0
		for {
			n, err := master.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			asked := strings.Count(out.String(), prompt)
			mu.Unlock()
			for ; answered < asked && answered < len(answers); answered++ {
				// As a person would: once the prompt reads without echo.
				waitNoEcho(master, 5*time.Second)
				if _, werr := master.WriteString(answers[answered] + "\n"); werr != nil {
					return
				}
			}
			if err != nil {
				return // EIO once the command and its children closed the terminal
			}
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err = <-waited:
	case <-time.After(timeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
		err = errors.New("killed: still running after " + timeout.String() + " (more prompts than answers?)")
	}
	select {
	case <-readDone:
	case <-time.After(2 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	return out.String(), err
}

// runMountCmdTTY is runMountCmd for a mount command on a terminal that
// answers its prompts (runOnTerminal).
func (m *Mount) runMountCmdTTY(t *testing.T, cmd *exec.Cmd, cmdline, prompt string, answers []string) (string, error) {
	t.Helper()
	before := binaryProcs()
	out, err := runOnTerminal(cmd, prompt, answers, 3*time.Minute)
	if err != nil {
		return out, fmt.Errorf("%s: %w", cmdline, err)
	}
	if _, ok := mountedAt(m.Dir); !ok {
		return out, fmt.Errorf("%s returned success but %s is not in /proc/self/mountinfo", cmdline, m.Dir)
	}
	if m.pid = m.findDaemon(before); m.pid == 0 {
		return out, fmt.Errorf("mounted, but no single daemon process of %s serves %s", binPath, m.Dir)
	}
	return out, nil
}

// waitNoEcho waits until the terminal of master no longer echoes what is
// typed (a password prompt is reading), at most timeout.
func waitNoEcho(master *os.File, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		tio, err := unix.IoctlGetTermios(int(master.Fd()), unix.TCGETS)
		if err != nil || tio.Lflag&unix.ECHO == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
