package sftp

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudmount/cloudmount/backends"
)

// TestUnlock asks for the passphrase of the key the server accepts only,
// allows PassphraseTries answers, returns the one that decrypted the key,
// and a daemon's New logs in with it without asking.
func TestUnlock(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	priv, signer := newKey(t)
	s.authorize(signer.PublicKey())
	accepted := filepath.Join(t.TempDir(), "accepted")
	writeKey(t, accepted, priv, "sesame")
	otherPriv, _ := newKey(t)
	refused := filepath.Join(t.TempDir(), "refused")
	writeKey(t, refused, otherPriv, "other")

	cfg := c.config(s)
	forEncryptedKeys(&cfg)
	cfg.Password = nil
	cfg.IdentityFiles = []string{refused, accepted}
	var asked []string
	answers := []string{"wrong", "sesame"}
	cfg.Passphrase = func(file string) (string, error) {
		asked = append(asked, file)
		a := answers[0]
		answers = answers[1:]
		return a, nil
	}
	cfg.PassphraseTries = 3
	got, err := Unlock(ctxT(t), cfg)
	if err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if len(asked) != 2 || asked[0] != accepted || asked[1] != accepted {
		t.Fatalf("asked for %q, want the accepted key twice (a wrong answer, then the right one)", asked)
	}
	if len(got) != 1 || got[accepted] != "sesame" {
		t.Fatalf("Unlock returned %d passphrases, want the accepted key's", len(got))
	}

	cfg.PassphraseTries = 0
	cfg.Passphrase = func(file string) (string, error) {
		if p, ok := got[file]; ok {
			return p, nil
		}
		return "", errors.New("not typed")
	}
	b := open(t, cfg)
	put(t, b, "x", "with the typed passphrase")
}

// TestUnlockWrong: three wrong answers fail the login with an error that
// names the key file and never the passphrase.
func TestUnlockWrong(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	priv, signer := newKey(t)
	s.authorize(signer.PublicKey())
	file := filepath.Join(t.TempDir(), "enc")
	writeKey(t, file, priv, "sesame")
	cfg := c.config(s)
	forEncryptedKeys(&cfg)
	cfg.Password = nil
	cfg.IdentityFiles = []string{file}
	calls := 0
	cfg.Passphrase = func(string) (string, error) { calls++; return "guess-number-x", nil }
	cfg.PassphraseTries = 3
	_, err := Unlock(ctxT(t), cfg)
	if !errors.Is(err, backends.ErrAuth) || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("Unlock with wrong passphrases: %v", err)
	}
	if strings.Contains(err.Error(), "guess-number") {
		t.Fatalf("the error quotes the passphrase: %v", err)
	}
	if calls != 3 {
		t.Fatalf("asked %d times, want 3", calls)
	}
}

// TestUnlockNothingEncrypted: without an encrypted key, Unlock connects
// nowhere.
func TestUnlockNothingEncrypted(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	priv, _ := newKey(t)
	file := filepath.Join(t.TempDir(), "plain")
	writeKey(t, file, priv, "")
	cfg := c.config(s)
	cfg.IdentityFiles = []string{file}
	cfg.Passphrase = func(string) (string, error) { t.Error("asked for a passphrase"); return "", nil }
	// The host key is not trusted: a connection would fail.
	got, err := Unlock(ctxT(t), cfg)
	if err != nil || got != nil {
		t.Fatalf("Unlock = %v, %v; want nothing", got, err)
	}
}
