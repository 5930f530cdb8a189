package cache

import "time"

// authState is what the queue knows about refused credentials (a 401 from
// a WebDAV server, a rejected SSH login). Unlike a network failure, the server still answers, so
// it is not probed: one upload per backoff tries whether the credentials
// work again, and the first that succeeds brings the queue back online.
// Few tries matter here, as servers count failed logins (Nextcloud
// throttles them, fail2ban bans the address).
type authState struct {
	failed bool      // the last upload was refused for its credentials
	tries  int       // refused uploads in a row
	next   time.Time // no upload starts before this while failed
}

// waitLocked is how long the queue must wait before the next try while
// the credentials are refused (0: it may try now, or nothing is refused).
func (a *authState) waitLocked(now time.Time) time.Duration {
	if !a.failed {
		return 0
	}
	return max(a.next.Sub(now), 0)
}

// authFailedLocked records an upload refused for its credentials: the
// queue goes offline with the reason, and the next try waits a backoff
// that grows with the refusals in a row. q.mu must be held.
func (q *Queue) authFailedLocked(err error) {
	now := time.Now()
	if !q.auth.failed {
		if q.online {
			q.offSince = now
		}
		q.log.Error("the server refuses the credentials; uploads wait in the journal and are retried until it accepts them: "+
			"check the password (secrets file, netrc or password command); after changing it, remount", "err", err)
	}
	q.online = false
	q.auth.failed = true
	q.auth.tries++
	q.auth.next = now.Add(q.backoff(q.auth.tries))
	q.lastErr = err.Error()
}

// backoff is the wait after the n-th failure in a row: 1s, 2s, 4s, ...
// up to MaxBackoff.
func (q *Queue) backoff(n int) time.Duration {
	return min(time.Second<<min(max(n-1, 0), 10), q.opts.MaxBackoff)
}
