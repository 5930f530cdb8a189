package cache

import "time"

// Status is a snapshot of a mount's write-back queue and connection, as
// `cloudmount status` shows it.
type Status struct {
	// Online is false while the server cannot be reached or refuses the
	// credentials; OfflineSince and LastError then say since when and why.
	Online bool `json:"online"`
	// AuthFailed: the server refused the credentials at the last upload
	// (Online is false meanwhile). Uploads wait in the journal and are
	// retried with a backoff until the server accepts them again.
	AuthFailed   bool      `json:"auth_failed"`
	OfflineSince time.Time `json:"offline_since,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	// QueuedFiles and QueuedBytes count uploads not yet on the server,
	// including the ones in progress.
	QueuedFiles int   `json:"queued_files"`
	QueuedBytes int64 `json:"queued_bytes"`
	// QueuedChanges counts changes of the tree (mkdir, rmdir, rm, mv) made
	// while the server could not be reached, not yet carried out there.
	QueuedChanges int `json:"queued_changes"`
	// Uploading lists the uploads in progress.
	Uploading []Transfer `json:"uploading"`
	// Failed lists uploads whose last attempt failed; they are retried
	// unless Permanent.
	Failed []Failure `json:"failed"`
	// Conflicts lists local versions kept as conflict copies since the mount.
	Conflicts []Conflict `json:"conflicts"`
	// Quarantined lists journal records that could not be read, moved aside
	// with their data for a person to look at.
	Quarantined []string `json:"quarantined"`
	// UploadedFiles and UploadedBytes count what reached the server since
	// the mount.
	UploadedFiles int   `json:"uploaded_files"`
	UploadedBytes int64 `json:"uploaded_bytes"`
	// Cache describes the block cache.
	Cache BlockStats `json:"cache"`
	// Server says what the server keeps of the metadata and who detects
	// other clients' changes.
	Server string `json:"server,omitempty"`
}

// Transfer is one upload in progress.
type Transfer struct {
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	Done    int64     `json:"done"`
	Rate    float64   `json:"rate"` // bytes per second
	Started time.Time `json:"started"`
}

// Failure is an upload whose last attempt failed.
type Failure struct {
	Path      string    `json:"path"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	Permanent bool      `json:"permanent"`
	NextTry   time.Time `json:"next_try,omitzero"`
}

// Conflict is a local version that went to a conflict copy because the
// server's version changed meanwhile, or a queued change of the tree that
// was not carried out as made because of a change on the server (Note
// says what was done instead; Copy is then empty or where the entry went).
type Conflict struct {
	Path string    `json:"path"`
	Copy string    `json:"copy"`
	Note string    `json:"note,omitempty"`
	Time time.Time `json:"time"`
}
