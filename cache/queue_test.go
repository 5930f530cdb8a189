package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// fakeUploader records uploads and fails as told.
type fakeUploader struct {
	mu      sync.Mutex
	got     []string // paths in upload order
	fail    error    // every upload fails with it while set
	probeOK bool
	tries   int // uploads attempted
}

func (u *fakeUploader) Upload(ctx context.Context, rec Record, progress func(int64)) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.tries++
	if u.fail != nil {
		return "", u.fail
	}
	progress(rec.Size)
	u.got = append(u.got, rec.Path)
	return "", nil
}

// Apply records a change of the tree as "CHANGE PATH" in the same order
// as the uploads.
func (u *fakeUploader) Apply(ctx context.Context, rec Record) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.tries++
	if u.fail != nil {
		return "", u.fail
	}
	u.got = append(u.got, rec.Change+" "+rec.Path)
	return "", nil
}

func (u *fakeUploader) Probe(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.probeOK {
		return backends.ErrUnavailable
	}
	return nil
}

func (u *fakeUploader) Permanent(err error) bool { return errors.Is(err, backends.ErrPermission) }
func (u *fakeUploader) Offline(err error) bool   { return errors.Is(err, backends.ErrUnavailable) }
func (u *fakeUploader) Unauthorized(err error) bool {
	return errors.Is(err, backends.ErrAuth)
}

func (u *fakeUploader) attempts() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.tries
}

func (u *fakeUploader) set(fail error, probeOK bool) {
	u.mu.Lock()
	u.fail, u.probeOK = fail, probeOK
	u.mu.Unlock()
}

func (u *fakeUploader) uploads() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.got...)
}

// openTestQueue opens a store in dir with a queue on u.
func openTestQueue(t *testing.T, dir string, u Uploader, o QueueOptions) (*Store, *Queue) {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	q, _, err := s.OpenQueue(u, o)
	if err != nil {
		t.Fatal(err)
	}
	q.Start()
	t.Cleanup(func() { q.Close(); s.Close() })
	return s, q
}

// commit stages content for p and commits it.
func commit(t *testing.T, s *Store, q *Queue, p, content string) {
	t.Helper()
	f, err := os.CreateTemp(s.StagingDir(), "stage-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(content)
	if _, err := q.Commit(Record{Path: p, Data: filepath.Base(f.Name()), Size: int64(len(content)), Create: true}); err != nil {
		t.Fatal(err)
	}
}

func syncWithin(t *testing.T, q *Queue, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return q.Sync(ctx, nil)
}

func TestQueueUploadsInOrderAndCoalesces(t *testing.T) {
	u := &fakeUploader{probeOK: true}
	s, q := openTestQueue(t, t.TempDir(), u, QueueOptions{Transfers: 1, Delay: 200 * time.Millisecond})
	commit(t, s, q, "a", "1")
	commit(t, s, q, "b", "2")
	commit(t, s, q, "a", "1 again") // within the delay: one upload of a
	q.SetMeta("b", func(r *Record) { mt := time.Unix(5, 0); r.Meta.MTime = &mt })
	if _, err := q.Rename("b", "c"); err != nil {
		t.Fatal(err)
	}
	if st := q.Status(); st.QueuedFiles != 2 || st.QueuedBytes != 8 {
		t.Fatalf("status %+v, want 2 files, 8 bytes", st)
	}
	if err := syncWithin(t, q, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(u.uploads(), ","); got != "c,a" {
		t.Fatalf("uploads %s, want c,a (b renamed to c before its upload, a once)", got)
	}
	if res, _ := s.Journal.Load(); len(res.Records) != 0 {
		t.Fatalf("journal keeps %d records after the uploads", len(res.Records))
	}
}

func TestQueueReplaysAfterRestart(t *testing.T) {
	dir := t.TempDir()
	down := &fakeUploader{}
	down.set(backends.ErrUnavailable, false)
	s, q := openTestQueue(t, dir, down, QueueOptions{})
	for _, p := range []string{"x", "y", "z"} {
		commit(t, s, q, p, p)
	}
	time.Sleep(100 * time.Millisecond)
	if st := q.Status(); st.Online || st.QueuedFiles != 3 {
		t.Fatalf("status while down %+v, want offline with 3 queued", st)
	}
	q.Close() // as kill -9 would leave it: records on disk
	s.Close()

	up := &fakeUploader{probeOK: true}
	_, q2 := openTestQueue(t, dir, up, QueueOptions{Transfers: 1})
	if err := syncWithin(t, q2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(up.uploads(), ","); got != "x,y,z" {
		t.Fatalf("replayed %s, want x,y,z in order", got)
	}
}

func TestQueueWaitsOfflineThenCompletes(t *testing.T) {
	u := &fakeUploader{}
	u.set(backends.ErrUnavailable, false)
	s, q := openTestQueue(t, t.TempDir(), u, QueueOptions{})
	commit(t, s, q, "f", "data")
	done := make(chan error, 1)
	go func() { done <- syncWithin(t, q, 30*time.Second) }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("sync returned while offline: %v", err)
	default:
	}
	u.set(nil, true)
	if err := <-done; err != nil {
		t.Fatalf("sync after the server came back: %v", err)
	}
	if st := q.Status(); !st.Online || st.QueuedFiles != 0 || st.UploadedFiles != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestQueueSyncReportsPermanentFailure(t *testing.T) {
	u := &fakeUploader{probeOK: true}
	u.set(backends.ErrPermission, true)
	s, q := openTestQueue(t, t.TempDir(), u, QueueOptions{})
	commit(t, s, q, "denied", "x")
	err := syncWithin(t, q, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("sync: %v, want the failed path", err)
	}
	st := q.Status()
	if len(st.Failed) != 1 || !st.Failed[0].Permanent || st.QueuedFiles != 1 {
		t.Fatalf("status %+v, want one permanent failure, still queued", st)
	}
}

func TestQueuePauseWaitsForUploadInFlight(t *testing.T) {
	block := make(chan struct{})
	started := make(chan struct{}, 1)
	u := &blockingUploader{fakeUploader: fakeUploader{probeOK: true}, block: block, started: started}
	s, q := openTestQueue(t, t.TempDir(), u, QueueOptions{})
	commit(t, s, q, "d/f", "x")
	<-started
	paused := make(chan struct{})
	go func() {
		resume := q.Pause("d")
		close(paused)
		resume()
	}()
	select {
	case <-paused:
		t.Fatal("Pause returned while an upload below it was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(block)
	select {
	case <-paused:
	case <-time.After(5 * time.Second):
		t.Fatal("Pause did not return after the upload ended")
	}
}

type blockingUploader struct {
	fakeUploader
	block   chan struct{}
	started chan struct{}
}

func (b *blockingUploader) Upload(ctx context.Context, rec Record, progress func(int64)) (string, error) {
	b.started <- struct{}{}
	<-b.block
	return b.fakeUploader.Upload(ctx, rec, progress)
}

// TestQueueRetriesAfterAuthFailure: uploads refused for their credentials
// (a 401 after the mount) are not failed for good: the queue says
// "authentication failed", tries one upload per backoff (servers count
// failed logins) even though the server answers probes, and uploads
// everything once the credentials work again, without a remount.
func TestQueueRetriesAfterAuthFailure(t *testing.T) {
	u := &fakeUploader{}
	refused := fmt.Errorf("put a: %w", backends.ErrAuth)
	u.set(refused, true) // the probe answers: only uploads are refused
	s, q := openTestQueue(t, t.TempDir(), u, QueueOptions{MaxBackoff: 2 * time.Second})
	for _, p := range []string{"a", "b", "c"} {
		commit(t, s, q, p, p)
	}
	done := make(chan error, 1)
	go func() { done <- syncWithin(t, q, 30*time.Second) }()
	start := time.Now()
	time.Sleep(2500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("sync returned while the credentials were refused: %v", err)
	default:
	}
	st := q.Status()
	if st.Online || !st.AuthFailed || !strings.Contains(st.LastError, "authentication failed") || st.QueuedFiles != 3 {
		t.Fatalf("status while refused: %+v, want offline, auth_failed, 3 queued", st)
	}
	for _, f := range st.Failed {
		if f.Permanent || f.NextTry.IsZero() {
			t.Errorf("failure %+v: want retried, with a next try", f)
		}
	}
	// The files due at the start may all be tried at once, in parallel,
	// before the first refusal; then one try per backoff (1s, 2s): not
	// one per file per second.
	if n, limit := u.attempts(), 3+int(time.Since(start)/time.Second); n < 1 || n > limit {
		t.Fatalf("%d upload attempts in %v while refused, want 1 to %d", n, time.Since(start).Round(time.Millisecond), limit)
	}
	u.set(nil, true)
	if err := <-done; err != nil {
		t.Fatalf("sync after the credentials work again: %v", err)
	}
	if st := q.Status(); !st.Online || st.AuthFailed || st.LastError != "" || st.QueuedFiles != 0 || st.UploadedFiles != 3 {
		t.Fatalf("status after: %+v", st)
	}
	got := u.uploads()
	slices.Sort(got)
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("uploads %v, want a, b and c", got)
	}
}

// TestQueueChangesGoFirstAndSurviveRestart queues, with the server down,
// a directory, files in it and elsewhere, a removal and a rename; after a
// restart (as after kill -9) with the server back, the changes run in the
// order they were made, each before the uploads they concern, and an
// unrelated upload does not wait for them.
func TestQueueChangesGoFirstAndSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	down := &fakeUploader{}
	down.set(backends.ErrUnavailable, false)
	s, q := openTestQueue(t, dir, down, QueueOptions{Transfers: 4})
	if _, err := q.Change(Record{Change: ChangeMkdir, Path: "new", Dir: true}); err != nil {
		t.Fatal(err)
	}
	commit(t, s, q, "new/f", "in the new directory")
	commit(t, s, q, "other", "unrelated")
	if _, err := q.Change(Record{Change: ChangeRemove, Path: "old/gone", Base: "v1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Change(Record{Change: ChangeRename, Path: "old", To: "moved", Dir: true}); err != nil {
		t.Fatal(err)
	}
	commit(t, s, q, "moved/g", "in the moved directory")
	if _, err := q.Change(Record{Change: "chmod", Path: "x"}); err == nil {
		t.Fatal("an unknown kind of change was queued")
	}
	time.Sleep(100 * time.Millisecond)
	st := q.Status()
	if st.Online || st.QueuedFiles != 3 || st.QueuedChanges < 3 {
		t.Fatalf("status while down %+v, want offline, 3 files and 3 changes queued", st)
	}
	q.Close()
	s.Close()

	up := &fakeUploader{probeOK: true}
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	q2, recs, err := s2.OpenQueue(up, QueueOptions{Transfers: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q2.Close(); s2.Close() })
	changes := 0
	for _, r := range recs {
		if r.IsChange() {
			changes++
		}
	}
	if changes != 3 {
		t.Fatalf("replayed %d changes (%v), want 3", changes, recs)
	}
	q2.Start()
	if err := syncWithin(t, q2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	got := up.uploads()
	at := map[string]int{}
	for i, g := range got {
		at[g] = i
	}
	for _, want := range []string{"mkdir new", "new/f", "other", "remove old/gone", "rename old", "moved/g"} {
		if _, ok := at[want]; !ok {
			t.Fatalf("done on the server: %q, missing %q", got, want)
		}
	}
	for _, order := range [][2]string{{"mkdir new", "new/f"}, {"mkdir new", "remove old/gone"},
		{"remove old/gone", "rename old"}, {"rename old", "moved/g"}} {
		if at[order[0]] > at[order[1]] {
			t.Errorf("done on the server in the order %q: %q must come before %q", got, order[0], order[1])
		}
	}
	if st := q2.Status(); st.QueuedChanges != 0 || st.QueuedFiles != 0 {
		t.Fatalf("status after sync %+v", st)
	}
	if res, _ := s2.Journal.Load(); len(res.Records) != 0 {
		t.Fatalf("journal keeps %d records after the sync", len(res.Records))
	}
}

// TestQueueChangeFailingForGoodIsDropped: a change the server refuses for
// good is reported as a conflict and dropped, and the uploads it held back
// go on.
func TestQueueChangeFailingForGoodIsDropped(t *testing.T) {
	u := &refusingApplier{fakeUploader: fakeUploader{probeOK: true}}
	s, q := openTestQueue(t, t.TempDir(), u, QueueOptions{})
	if _, err := q.Change(Record{Change: ChangeMkdir, Path: "d", Dir: true}); err != nil {
		t.Fatal(err)
	}
	commit(t, s, q, "d/f", "x")
	if err := syncWithin(t, q, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st := q.Status()
	if got := strings.Join(u.uploads(), ","); got != "d/f" {
		t.Fatalf("uploads %q, want d/f", got)
	}
	if len(st.Conflicts) != 1 || st.Conflicts[0].Path != "mkdir d" || !strings.Contains(st.Conflicts[0].Note, "not done") {
		t.Fatalf("conflicts %+v, want the refused mkdir", st.Conflicts)
	}
}

// refusingApplier refuses every change of the tree for good.
type refusingApplier struct{ fakeUploader }

func (u *refusingApplier) Apply(ctx context.Context, rec Record) (string, error) {
	return "", backends.ErrPermission
}
