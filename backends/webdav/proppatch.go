package webdav

import (
	"context"
	"fmt"
	"io"

	"github.com/cloudmount/cloudmount/backends"
)

// proppatch sets and removes cm: properties of p. It fails with
// ErrUnsupported when the server refuses any of them.
func (b *Backend) proppatch(ctx context.Context, p string, set [][2]string, remove []string) error {
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.call(ctx, &request{
		method: "PROPPATCH",
		path:   p,
		dir:    p == "",
		body:   proppatchBody(set, remove),
	})
	if err != nil {
		return err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case 200, 204:
		return nil
	case 207:
	default:
		return statusError("PROPPATCH", p, resp)
	}
	if err := proppatchVerdict(resp.Body); err != nil {
		return fmt.Errorf("PROPPATCH %s: %w", display(p), err)
	}
	return nil
}

// proppatchVerdict reads the multistatus reply to a PROPPATCH and decides
// whether the changes took effect (RFC 4918 §9.2.1): nil when there is at
// least one response, each carries a status (its own or per property) and
// every status is 2xx; ErrUnsupported when any is not (or does not read,
// as a refusal must never pass for success); ErrProtocol when the reply is
// not a complete multistatus or confirms nothing.
func proppatchVerdict(r io.Reader) error {
	res, err := parseMultistatus(r)
	if err != nil {
		return err
	}
	if len(res) == 0 {
		return fmt.Errorf("%w: PROPPATCH reply confirms nothing", backends.ErrProtocol)
	}
	for _, r := range res {
		if r.failed {
			return fmt.Errorf("%w: the server refused the dead properties", backends.ErrUnsupported)
		}
		if !r.found && r.status == 0 {
			return fmt.Errorf("%w: PROPPATCH reply has a response without status", backends.ErrProtocol)
		}
	}
	return nil
}
