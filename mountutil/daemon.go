package mountutil

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DaemonVerb is the hidden first argument with which the command re-executes
// itself as the background daemon.
const DaemonVerb = "__daemon"

// File descriptors the daemon inherits: the settings pipe, the status pipe,
// then Daemon.Files in order.
const (
	settingsFD       = 3
	statusFD         = 4
	firstInheritedFD = 5
)

// DaemonArgs is the daemon's argv: argv0, DaemonVerb, source and mountpoint.
// Source and mountpoint are there for ps(1) only; the settings, password
// included, travel over the settings pipe. source must hold no secret.
func DaemonArgs(argv0, source, mountpoint string) []string {
	return []string{argv0, DaemonVerb, source, mountpoint}
}

// DaemonEnv is environ without CLOUDMOUNT_PASSWORD, the daemon's
// environment.
func DaemonEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if name, _, _ := strings.Cut(kv, "="); name == PasswordEnv {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// InheritedFD is the descriptor number under which the daemon receives
// Daemon.Files[i].
func InheritedFD(i int) int { return firstInheritedFD + i }

// Daemon is a background process to start and wait for.
type Daemon struct {
	// Exe is the program to run; "" means /proc/self/exe.
	Exe string
	// Args and Env are its argv and environment (see DaemonArgs and
	// DaemonEnv).
	Args, Env []string
	// Settings are sent to the daemon as JSON over an inherited pipe; they
	// may hold the password.
	Settings any
	// Files are passed on as descriptors InheritedFD(0), InheritedFD(1), ...
	Files []*os.File
	// Timeout bounds the wait for the daemon's report.
	Timeout time.Duration
	// LogFile is named in errors, for the details.
	LogFile string
	// Notice, if not nil, gets the line the daemon reported for the user
	// with its success (see Handoff.ReportReady), if any.
	Notice func(line string)
}

// report is what the daemon writes on the status pipe.
type report struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Notice is a line for the user of a mount that worked.
	Notice string `json:"notice,omitempty"`
}

// Start starts the daemon in a new session with standard input and output
// on /dev/null, hands it the settings, and waits until it reports. It
// returns the daemon's pid once it reported success; on failure the daemon
// has exited and the error is the one it reported. SIGINT, SIGTERM and
// SIGHUP received meanwhile are passed on to the daemon as SIGTERM.
func (d Daemon) Start() (int, error) {
	exe := d.Exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	settingsR, settingsW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("start daemon: %w", err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		settingsR.Close()
		settingsW.Close()
		return 0, fmt.Errorf("start daemon: %w", err)
	}
	defer statusR.Close()
	// Descriptors this process inherited without close-on-exec (a pipe of
	// the shell that ran us) must not live on in the daemon: whoever waits
	// for their end would wait as long as the mount lives.
	closeOnExecAll()
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        d.Args,
		Env:         d.Env,
		Dir:         "/",
		ExtraFiles:  append([]*os.File{settingsR, statusW}, d.Files...),
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	settingsR.Close()
	statusW.Close()
	if err != nil {
		settingsW.Close()
		return 0, fmt.Errorf("start daemon: %w", err)
	}
	// The settings are small: the pipe's buffer takes them whole. A daemon
	// that died before reading them shows up as a missing report below.
	_ = json.NewEncoder(settingsW).Encode(d.Settings)
	settingsW.Close()
	return d.wait(cmd, statusR)
}

// wait waits for the daemon's report, passing signals on.
func (d Daemon) wait(cmd *exec.Cmd, status *os.File) (int, error) {
	reports := make(chan report, 1)
	go func() { reports <- readReport(status) }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	timedOut := false
	for {
		select {
		case r := <-reports:
			if r.OK {
				if r.Notice != "" && d.Notice != nil {
					d.Notice(r.Notice)
				}
				pid := cmd.Process.Pid
				_ = cmd.Process.Release()
				return pid, nil
			}
			werr := cmd.Wait()
			switch {
			case timedOut:
				return 0, fmt.Errorf("the daemon did not report within %v%s", timeout, d.seeLog())
			case r.Error != "":
				return 0, errors.New(r.Error)
			default:
				return 0, fmt.Errorf("the daemon exited without reporting (%v)%s", werr, d.seeLog())
			}
		case <-sigs:
			_ = cmd.Process.Signal(syscall.SIGTERM)
		case <-timer.C:
			timedOut = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
		}
	}
}

// seeLog points to the daemon's log in an error message.
func (d Daemon) seeLog() string {
	if d.LogFile == "" {
		return ""
	}
	return "; see " + d.LogFile
}

// readReport reads the daemon's one-line report; a closed pipe without one
// is a failure with no message.
func readReport(r *os.File) report {
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return report{}
	}
	var rep report
	if err := json.Unmarshal(line, &rep); err != nil {
		return report{Error: "the daemon sent a malformed report"}
	}
	if !rep.OK && rep.Error == "" {
		rep.Error = "the daemon failed without a message"
	}
	return rep
}

// closeOnExecAll marks every open descriptor above standard error
// close-on-exec. The daemon's own descriptors are passed with ExtraFiles,
// which are duplicated without the flag.
func closeOnExecAll() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}
