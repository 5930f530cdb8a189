package mountutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Handoff is the daemon's side of the pipes to the command that started it.
type Handoff struct {
	status *os.File
	once   sync.Once
}

// ReceiveHandoff reads the settings that Daemon.Start sent into v and
// returns the handle on which the daemon reports. It fails when the process
// was not started by Daemon.Start.
func ReceiveHandoff(v any) (*Handoff, error) {
	for _, fd := range []int{settingsFD, statusFD} {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			return nil, errors.New("not started by cloudmount (no handoff pipe)")
		}
		// Programs the daemon runs (fusermount3) must not inherit them.
		unix.CloseOnExec(fd)
	}
	settings := os.NewFile(settingsFD, "settings")
	defer settings.Close()
	if err := json.NewDecoder(io.LimitReader(settings, 1<<20)).Decode(v); err != nil {
		return nil, fmt.Errorf("read settings from the starting command: %w", err)
	}
	return &Handoff{status: os.NewFile(statusFD, "status")}, nil
}

// InheritedFile returns Daemon.Files[i] as the daemon received it, marked
// close-on-exec.
func InheritedFile(i int) *os.File {
	fd := InheritedFD(i)
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), fmt.Sprintf("/dev/fd/%d", fd))
}

// Report tells the starting command the outcome: nil means mounted and
// ready, an error is printed by it. Only the first call counts. It fails
// when the starting command is gone.
func (h *Handoff) Report(err error) error { return h.report(err, "") }

// ReportReady reports success with a line for the user (notice), which the
// starting command prints.
func (h *Handoff) ReportReady(notice string) error { return h.report(nil, notice) }

func (h *Handoff) report(err error, notice string) error {
	var werr error
	h.once.Do(func() {
		rep := report{OK: err == nil, Notice: notice}
		if err != nil {
			rep.Error = err.Error()
		}
		werr = json.NewEncoder(h.status).Encode(rep)
		if cerr := h.status.Close(); werr == nil {
			werr = cerr
		}
	})
	if werr != nil {
		return fmt.Errorf("report to the starting command: %w", werr)
	}
	return nil
}

// RedirectOutput points standard output and error at f (the daemon's log),
// so that a panic or a library's stray output is kept.
func RedirectOutput(f *os.File) error {
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return fmt.Errorf("redirect output to %s: %w", f.Name(), err)
		}
	}
	return nil
}
