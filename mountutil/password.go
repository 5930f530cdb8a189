package mountutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// PasswordEnv is the environment variable that may hold the password. It is
// read by the command the user runs and never passed on to the daemon.
const PasswordEnv = "CLOUDMOUNT_PASSWORD"

// Credentials are a resolved user and password.
type Credentials struct {
	// User is the remote user; "" means no authentication.
	User string
	// Password is the user's password ("" when User is "").
	Password string
	// From says where the password came from, for the log ("secrets file
	// ~/.config/cloudmount/secrets"); never the password itself.
	From string
}

// PasswordLookup says whose password is wanted and where to look for it.
type PasswordLookup struct {
	// URL is the source, without user or password.
	URL string
	// Mountpoint is the absolute mountpoint, for secrets keyed by it; ""
	// matches only secrets keyed by URL.
	Mountpoint string
	// User is the user from the command line or the URL; "" when none was
	// given, in which case the secrets files and netrc may name one.
	User string
	// SecretsFile (the user's), SystemSecretsFile and NetrcFile are the
	// files to read; "" skips one.
	SecretsFile, SystemSecretsFile, NetrcFile string
	// Command is a password command (see RunPasswordCommand); "" for none.
	Command string
	// CommandStderr receives the password command's standard error.
	CommandStderr io.Writer
	// Getenv reads the environment (os.Getenv when nil); Environ is the
	// environment of the password command (os.Environ() when nil).
	Getenv  func(string) string
	Environ []string
	// Prompt asks for the password on a terminal; nil when there is none.
	Prompt func(prompt string) (string, error)
	// Optional: finding no password is no error (the source has other
	// ways to authenticate, such as SSH keys).
	Optional bool
}

// Resolve finds the password, from the first of: CLOUDMOUNT_PASSWORD, the
// user's secrets file, the system secrets file, the password command,
// netrc, the prompt. Without a user, only the secrets files and netrc are
// asked (they may name the user); if they have nothing, or cannot be read
// (HOME is another user's, as under su), the result is no authentication.
// Errors never contain a password.
func (l PasswordLookup) Resolve() (Credentials, error) {
	getenv := l.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if l.User != "" {
		if p := getenv(PasswordEnv); p != "" {
			return Credentials{User: l.User, Password: p, From: "$" + PasswordEnv}, nil
		}
	}
	if l.SecretsFile != "" {
		secrets, err := ReadSecretsFile(l.SecretsFile)
		if err != nil && !(l.User == "" && errors.Is(err, fs.ErrPermission)) {
			return Credentials{}, err
		}
		if s, ok := FindSecret(secrets, l.URL, l.Mountpoint, l.User); ok {
			return Credentials{User: s.User, Password: s.Password, From: "secrets file " + Tildify(l.SecretsFile)}, nil
		}
	}
	if l.SystemSecretsFile != "" {
		secrets, err := ReadSystemSecretsFile(l.SystemSecretsFile)
		if err != nil {
			return Credentials{}, err
		}
		if s, ok := FindSecret(secrets, l.URL, l.Mountpoint, l.User); ok {
			return Credentials{User: s.User, Password: s.Password, From: "secrets file " + l.SystemSecretsFile}, nil
		}
	}
	if l.Command != "" {
		if l.User == "" {
			return Credentials{}, fmt.Errorf("a password command needs a user name: put it in the URL (https://NAME@host/...) or give --user")
		}
		env := l.Environ
		if env == nil {
			env = os.Environ()
		}
		stderr := l.CommandStderr
		if stderr == nil {
			stderr = io.Discard
		}
		p, err := RunPasswordCommand(context.Background(), l.Command, env, stderr)
		if err != nil {
			return Credentials{}, err
		}
		return Credentials{User: l.User, Password: p, From: "password command"}, nil
	}
	if l.NetrcFile != "" {
		c, ok, err := l.fromNetrc()
		if err != nil && !(l.User == "" && errors.Is(err, fs.ErrPermission)) || ok {
			return c, err
		}
	}
	if l.User == "" || (l.Optional && l.Prompt == nil) {
		return Credentials{User: l.User}, nil
	}
	if l.Prompt != nil {
		p, err := l.Prompt(fmt.Sprintf("Password for %s at %s: ", l.User, l.URL))
		if err != nil {
			return Credentials{}, err
		}
		if p == "" {
			return Credentials{}, errors.New("no password given")
		}
		return Credentials{User: l.User, Password: p, From: "terminal"}, nil
	}
	return Credentials{}, l.missing()
}

// fromNetrc looks the source's host up in the netrc file.
func (l PasswordLookup) fromNetrc() (Credentials, bool, error) {
	entries, err := ReadNetrcFile(l.NetrcFile)
	if err != nil || entries == nil {
		return Credentials{}, false, err
	}
	u, err := url.Parse(l.URL)
	if err != nil {
		return Credentials{}, false, nil
	}
	e, ok := FindNetrc(entries, u.Hostname(), l.User)
	if !ok || (l.User == "" && e.Login == "") {
		return Credentials{}, false, nil
	}
	user := l.User
	if user == "" {
		user = e.Login
	}
	return Credentials{User: user, Password: e.Password, From: "netrc " + Tildify(l.NetrcFile)}, true, nil
}

// missing is the error when no source has a password: it says how to give
// one.
func (l PasswordLookup) missing() error {
	file := l.SecretsFile
	if file == "" {
		file = DefaultSecretsFile()
	}
	if file == "" {
		file = "~/.config/cloudmount/secrets"
	}
	return fmt.Errorf("no password for %s (user %s): put \"%s %s PASSWORD\" in %s (mode 0600), give a password command (-o password_command=...), or set %s",
		l.URL, l.User, l.URL, l.User, Tildify(file), PasswordEnv)
}

// TerminalPrompt returns a prompt that reads a password from standard input
// without echo, or nil when standard input is not a terminal. Interrupting
// it restores the terminal and exits with ExitMountFailed.
func TerminalPrompt() func(string) (string, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil
	}
	return func(prompt string) (string, error) {
		state, err := term.GetState(fd)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		done := make(chan struct{})
		defer func() { signal.Stop(sigs); close(done) }()
		go func() {
			select {
			case <-sigs:
				_ = term.Restore(fd, state)
				fmt.Fprintln(os.Stderr)
				os.Exit(ExitMountFailed)
			case <-done:
			}
		}()
		fmt.Fprint(os.Stderr, prompt)
		p, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(p), nil
	}
}
