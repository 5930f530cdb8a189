package tahoe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// uncoordinatedAttempts is how often a change of a directory is tried when
// it collides with another writer's (UncoordinatedWriteError). The node
// itself already retries a directory change four times before it reports
// one.
const uncoordinatedAttempts = 4

// change sends one change of a directory (a POST to the directory's own
// write cap) and tries it again, after a random pause, while it collides
// with another writer's change (UncoordinatedWriteError); in the end such
// a collision fails with ErrPrecondition. Tahoe may report a collision
// for a publish that went through all the same: when a later attempt is
// refused because the change is already there (ErrExist, ErrNotFound),
// landed says whether it is, and if so the change succeeded.
func (b *Backend) change(ctx context.Context, r *request, landed func(context.Context) bool) error {
	collided := false
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s %s: %w", r.op, display(r.shown), err)
		}
		err := b.changeOnce(ctx, r)
		if err == nil {
			return nil
		}
		if collided && landed != nil && !isUncoordinated(err) &&
			(errors.Is(err, backends.ErrExist) || errors.Is(err, backends.ErrNotFound)) && landed(ctx) {
			return nil
		}
		if !isUncoordinated(err) || attempt >= uncoordinatedAttempts {
			return err
		}
		collided = true
		wait := b.jitter()
		b.log.Warn("tahoe: another client changed the directory at the same time; trying again",
			"op", r.op, slog.String("path", display(r.shown)), "attempt", attempt, "wait", wait)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s %s: %w", r.op, display(r.shown), err)
		}
	}
}

// changeOnce sends r once. The reply (a cap, "thing moved") is not kept.
func (b *Backend) changeOnce(ctx context.Context, r *request) error {
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.do(ctx, r)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
		drain(resp)
		return nil
	}
	return replyError(r, resp)
}

// link sets the child name of the directory whose write cap is dirRW to
// the node n with metadata meta, in one change (POST ?t=set_children).
// replace is "true", "false" (a name taken fails with ErrExist) or
// "only-files" (a directory at the name fails with ErrExist).
func (b *Backend) link(ctx context.Context, op, p, dirRW, name string, n *node, meta edgeMeta, replace string,
	landed func(context.Context) bool) error {
	props := map[string]any{"metadata": meta.marshal()}
	if n.ro != "" {
		props["ro_uri"] = n.ro
	}
	if n.rw != "" {
		props["rw_uri"] = n.rw
	}
	body, err := json.Marshal(map[string]any{name: []any{n.kind, props}})
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, display(p), err)
	}
	r := &request{method: http.MethodPost, op: op, cap: dirRW, shown: p, body: body,
		// Not a form type: Tahoe would parse the body as a form.
		ctype: "application/json",
		query: url.Values{"t": {"set_children"}, "replace": {replace}}}
	return b.change(ctx, r, landed)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
