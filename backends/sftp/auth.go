package sftp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// defaultKeyNames are the key files OpenSSH tries in ~/.ssh.
var defaultKeyNames = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// authenticator logs in as OpenSSH does: keys from the agent, explicit
// identity files, the ssh config's identity files and the default key
// files in ~/.ssh (encrypted ones decrypted with Passphrase, asked only
// when the server accepts the key), then password and keyboard-interactive
// with Password. Decrypted keys are kept for reconnects.
type authenticator struct {
	agentSocket string
	explicit    []string // Config.IdentityFiles
	defaults    []string // ~/.ssh/id_*
	password    func() (string, error)
	passphrase  func(keyFile string) (string, error)
	tries       int // Config.PassphraseTries, at least 1

	mu   sync.Mutex          // protects keys
	keys map[string]*keyFile // by path
}

// keyFile is one private key file, loaded once.
type keyFile struct {
	path string
	pub  ssh.PublicKey // nil: unusable
	// signer is the decrypted key; nil for an encrypted one not yet needed.
	signer ssh.Signer
	// problem says why the file is not offered ("" if it is).
	problem string
	// unlockedWith is the passphrase that decrypted signer, for Unlock;
	// "" for a key that was not encrypted.
	unlockedWith string
}

// encrypted reports whether kf is offered but still needs its passphrase.
func (kf *keyFile) encrypted() bool { return kf.signer == nil && kf.pub != nil && kf.problem == "" }

// attempt records one login, for the error message when it fails. It never
// holds a secret.
type attempt struct {
	mu       sync.Mutex
	offered  []string // "agent key ED25519 SHA256:…", "key file /home/u/.ssh/id_rsa"
	notes    []string // problems found on the way
	password bool     // Password was asked for
	kiAsked  []string // keyboard-interactive questions we could not answer
}

func (a *attempt) note(format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	for _, n := range a.notes {
		if n == msg {
			return
		}
	}
	a.notes = append(a.notes, msg)
}

// methods returns the auth methods for e; closeAgent releases the agent
// connection once the handshake is over. withPassword is false for jump
// hosts: the password is the target's, and is sent to no one else.
func (au *authenticator) methods(e *endpoint, att *attempt, withPassword bool) (methods []ssh.AuthMethod, closeAgent func()) {
	closeAgent = func() {}
	var agentSigners []ssh.Signer
	if au.agentSocket != "" {
		c, err := net.DialTimeout("unix", au.agentSocket, 5*time.Second)
		if err != nil {
			att.note("the ssh agent at %s is not reachable (%v)", au.agentSocket, err)
		} else {
			closeAgent = func() { c.Close() }
			signers, err := agent.NewClient(c).Signers()
			if err != nil {
				att.note("the ssh agent did not list its keys (%v)", err)
			}
			agentSigners = signers
		}
	}
	files := au.keyFiles(e, att)

	// One publickey method with every key: x/crypto tries each method
	// name once, so a second publickey method would never be used.
	methods = append(methods, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		var signers []ssh.Signer
		seen := map[string]bool{}
		filePubs := map[string]bool{}
		for _, kf := range files {
			filePubs[string(kf.pub.Marshal())] = true
		}
		for _, s := range agentSigners {
			k := string(s.PublicKey().Marshal())
			if seen[k] || (e.identitiesOnly && !filePubs[k]) {
				continue
			}
			seen[k] = true
			signers = append(signers, s)
			att.mu.Lock()
			att.offered = append(att.offered, fmt.Sprintf("agent key %s %s", s.PublicKey().Type(), ssh.FingerprintSHA256(s.PublicKey())))
			att.mu.Unlock()
		}
		for _, kf := range files {
			k := string(kf.pub.Marshal())
			if seen[k] {
				continue
			}
			seen[k] = true
			signers = append(signers, &lazySigner{au: au, kf: kf, att: att})
			att.mu.Lock()
			att.offered = append(att.offered, "key file "+kf.path)
			att.mu.Unlock()
		}
		return signers, nil
	}))
	if withPassword && au.password != nil {
		var (
			once sync.Once
			pw   string
			err  error
		)
		get := func() (string, error) {
			once.Do(func() {
				att.mu.Lock()
				att.password = true
				att.mu.Unlock()
				pw, err = au.password()
			})
			return pw, err
		}
		methods = append(methods, ssh.PasswordCallback(get))
		methods = append(methods, ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
			switch {
			case len(questions) == 0:
				return nil, nil
			case len(questions) == 1 && !echos[0]:
				p, err := get()
				if err != nil {
					return nil, err
				}
				return []string{p}, nil
			}
			att.mu.Lock()
			for _, q := range questions {
				att.kiAsked = append(att.kiAsked, strings.TrimSpace(q))
			}
			att.mu.Unlock()
			return nil, fmt.Errorf("the server asks %d questions at once", len(questions))
		}))
	}
	return methods, closeAgent
}

// keyFiles loads the key files to offer to e, in order, each once.
func (au *authenticator) keyFiles(e *endpoint, att *attempt) []*keyFile {
	var out []*keyFile
	seen := map[string]bool{}
	try := func(path string, explicit bool) {
		if path == "" || seen[path] {
			return
		}
		seen[path] = true
		kf := au.load(path, explicit)
		if kf == nil {
			return
		}
		if kf.problem != "" {
			att.note("%s", kf.problem)
			return
		}
		out = append(out, kf)
	}
	for _, p := range au.explicit {
		try(p, true)
	}
	for _, p := range e.identityFiles {
		try(p, true)
	}
	for _, p := range au.defaults {
		try(p, false)
	}
	return out
}

// load reads a key file once; nil for a default file that does not exist.
func (au *authenticator) load(path string, explicit bool) *keyFile {
	au.mu.Lock()
	defer au.mu.Unlock()
	if kf, ok := au.keys[path]; ok {
		return kf
	}
	kf := &keyFile{path: path}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !explicit:
		return nil
	case err != nil:
		kf.problem = fmt.Sprintf("cannot read the key file %s (%v)", path, unwrapPathError(err))
	default:
		au.parse(kf, data)
	}
	if au.keys == nil {
		au.keys = map[string]*keyFile{}
	}
	au.keys[path] = kf
	return kf
}

// parse fills kf from the file's content. An encrypted key keeps only its
// public half (from the file or from FILE.pub) until the server accepts it.
func (au *authenticator) parse(kf *keyFile, data []byte) {
	signer, err := ssh.ParsePrivateKey(data)
	if err == nil {
		kf.signer, kf.pub = signer, signer.PublicKey()
		return
	}
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		kf.problem = fmt.Sprintf("the key file %s does not parse (%v)", kf.path, err)
		return
	}
	if au.passphrase == nil {
		kf.problem = fmt.Sprintf("skipped the encrypted key %s: no passphrase was given (use ssh-agent, or the passphrase option)", kf.path)
		return
	}
	kf.pub = missing.PublicKey
	if kf.pub == nil {
		if pubData, err := os.ReadFile(kf.path + ".pub"); err == nil {
			if pub, _, _, _, err := ssh.ParseAuthorizedKey(pubData); err == nil {
				kf.pub = pub
			}
		}
	}
	if kf.pub == nil {
		// An old PEM key without its .pub: decrypt now to know it.
		if err := au.decrypt(kf, data); err != nil {
			kf.problem = err.Error()
		}
	}
}

// decrypt asks for kf's passphrase and decrypts the key. Called with au.mu
// held.
func (au *authenticator) decrypt(kf *keyFile, data []byte) error {
	if data == nil {
		var err error
		if data, err = os.ReadFile(kf.path); err != nil {
			return fmt.Errorf("cannot read the key file %s (%v)", kf.path, unwrapPathError(err))
		}
	}
	var (
		signer ssh.Signer
		pass   string
		err    error
	)
	for range max(au.tries, 1) {
		if pass, err = au.passphrase(kf.path); err != nil {
			return fmt.Errorf("no passphrase for the key %s (%v)", kf.path, err)
		}
		if signer, err = ssh.ParsePrivateKeyWithPassphrase(data, []byte(pass)); err == nil {
			break
		}
	}
	if err != nil {
		// Never the passphrase itself, nor x/crypto's words for it.
		return fmt.Errorf("the passphrase of the key %s is wrong, or the key does not parse", kf.path)
	}
	if kf.pub != nil && string(kf.pub.Marshal()) != string(signer.PublicKey().Marshal()) {
		return fmt.Errorf("the key %s does not match its public key %s.pub", kf.path, kf.path)
	}
	kf.signer, kf.pub, kf.unlockedWith = signer, signer.PublicKey(), pass
	return nil
}

// lazySigner is an encrypted key offered by its public half; it asks for
// the passphrase only when the server accepts the key and a signature is
// needed.
type lazySigner struct {
	au  *authenticator
	kf  *keyFile
	att *attempt
}

func (s *lazySigner) PublicKey() ssh.PublicKey { return s.kf.pub }

func (s *lazySigner) signer() (ssh.Signer, error) {
	s.au.mu.Lock()
	defer s.au.mu.Unlock()
	if s.kf.signer != nil {
		return s.kf.signer, nil
	}
	if s.kf.problem != "" {
		return nil, &keyError{errors.New(s.kf.problem)}
	}
	if err := s.au.decrypt(s.kf, nil); err != nil {
		// Ask once: a wrong passphrase is not asked again on reconnects.
		s.kf.problem = err.Error()
		s.att.note("%s", err)
		return nil, &keyError{err}
	}
	return s.kf.signer, nil
}

func (s *lazySigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	sg, err := s.signer()
	if err != nil {
		return nil, err
	}
	return sg.Sign(rand, data)
}

// SignWithAlgorithm makes RSA keys usable with rsa-sha2-256/512, which
// servers require today.
func (s *lazySigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*ssh.Signature, error) {
	sg, err := s.signer()
	if err != nil {
		return nil, err
	}
	if as, ok := sg.(ssh.AlgorithmSigner); ok {
		return as.SignWithAlgorithm(rand, data, algorithm)
	}
	if algorithm != "" && algorithm != sg.PublicKey().Type() {
		return nil, fmt.Errorf("ssh: key %s cannot sign with %s", s.kf.path, algorithm)
	}
	return sg.Sign(rand, data)
}

// keyError is a key that could not sign (its passphrase is wrong): a
// failed login, though x/crypto reports it as the handshake's error.
type keyError struct{ err error }

func (e *keyError) Error() string { return e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// describe explains a failed login.
func (att *attempt) describe(e *endpoint, passwordConfigured bool) string {
	att.mu.Lock()
	defer att.mu.Unlock()
	var tried []string
	if len(att.offered) > 0 {
		tried = append(tried, strings.Join(att.offered, ", "))
	}
	if att.password {
		tried = append(tried, "the password")
	}
	who := "the server " + e.addr()
	if e.jump {
		who = e.label()
	}
	msg := fmt.Sprintf("authentication failed: %s refused user %q", who, e.user)
	if len(tried) == 0 {
		msg += "; there was no key and no password to offer"
		if !passwordConfigured {
			msg += " (no ssh agent, no key files, no password given)"
		}
	} else {
		msg += " (tried " + strings.Join(tried, "; ") + ")"
		if att.password {
			msg += ": wrong user name or password, or the server accepts neither"
		}
	}
	if len(att.kiAsked) > 0 {
		msg += fmt.Sprintf("; the server asked questions cloudmount cannot answer: %q", att.kiAsked)
	}
	if len(att.notes) > 0 {
		msg += "; " + strings.Join(att.notes, "; ")
	}
	return msg
}

// unwrapPathError drops the path that an *os.PathError repeats.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// defaultKeyFiles are home's ~/.ssh/id_* files.
func defaultKeyFiles(home string) []string {
	if home == "" {
		return nil
	}
	var out []string
	for _, n := range defaultKeyNames {
		out = append(out, filepath.Join(home, ".ssh", n))
	}
	return out
}
