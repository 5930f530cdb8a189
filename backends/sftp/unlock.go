package sftp

import (
	"context"
	"time"
)

// PromptTime is how much longer than Config.Timeout an Unlock login may
// take while a passphrase is typed: sshd's default LoginGraceTime, after
// which the server hangs up anyway.
const PromptTime = 2 * time.Minute

// Unlock logs in to the server once, as New does, to learn the
// passphrases of the encrypted key files that the servers (the ProxyJump
// hops and the server) accept: Config.Passphrase is asked only for those,
// as ssh does, and typically prompts on a terminal, before the daemon
// that does the real logins starts. It returns the passphrases that
// decrypted a key, by key file, for Config.Passphrase of that daemon.
// Without an encrypted key file to offer it connects nowhere and returns
// nil. A login may last up to PromptTime longer than Config.Timeout.
func Unlock(ctx context.Context, cfg Config) (map[string]string, error) {
	if cfg.Passphrase == nil {
		return nil, nil
	}
	b, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	if !b.auth.anyEncrypted(append(append([]*endpoint(nil), b.hops...), b.target)) {
		return nil, nil
	}
	b.promptTime = PromptTime
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	c.kill("unlocked")
	return b.auth.unlocked(), nil
}

// anyEncrypted reports whether a key file offered to one of eps waits for
// its passphrase.
func (au *authenticator) anyEncrypted(eps []*endpoint) bool {
	for _, e := range eps {
		for _, kf := range au.keyFiles(e, &attempt{}) {
			au.mu.Lock()
			enc := kf.encrypted()
			au.mu.Unlock()
			if enc {
				return true
			}
		}
	}
	return false
}

// unlocked returns the passphrases that decrypted key files, by file.
func (au *authenticator) unlocked() map[string]string {
	au.mu.Lock()
	defer au.mu.Unlock()
	var m map[string]string
	for path, kf := range au.keys {
		if kf.signer != nil && kf.unlockedWith != "" {
			if m == nil {
				m = map[string]string{}
			}
			m[path] = kf.unlockedWith
		}
	}
	return m
}
