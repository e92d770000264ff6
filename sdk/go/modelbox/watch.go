package modelbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"

	v1 "modelbox.dev/sdk/go/modelboxv1"
)

// ChangeEvent is one entry of the server's change feed (runs created and updated, metrics
// appended, models created, ...), numbered by an increasing sequence number.
type ChangeEvent struct {
	Seq        uint64
	Kind       string // created | updated | appended | revoked
	ObjectType string
	ObjectID   string
	Payload    json.RawMessage // a JSON object
	Actor      string          // who made the change: a token's user, "token", "anonymous", or an OS user
}

func changeOf(m *v1.ChangeEvent) ChangeEvent {
	payload := json.RawMessage(m.PayloadJson)
	if len(payload) == 0 {
		payload = json.RawMessage("{}")
	}
	return ChangeEvent{Seq: m.Seq, Kind: m.Kind, ObjectType: m.ObjectType, ObjectID: m.ObjectId, Payload: payload, Actor: m.Actor}
}

// Changes lists at most limit change events after since, and the server's newest sequence
// number.
func (c *Client) Changes(ctx context.Context, since uint64, limit int) ([]ChangeEvent, uint64, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.api.ListChanges(ctx, &v1.ListChangesRequest{Since: since, Limit: uint32(limit)})
	if err != nil {
		return nil, 0, c.wrap(err)
	}
	out := make([]ChangeEvent, 0, len(resp.Changes))
	for _, m := range resp.Changes {
		out = append(out, changeOf(m))
	}
	return out, resp.LastSeq, nil
}

// LastChangeSeq is the newest sequence number: Watch from it to follow what happens from now on.
func (c *Client) LastChangeSeq(ctx context.Context) (uint64, error) {
	_, last, err := c.Changes(ctx, 0, 0)
	return last, err
}

// Watch calls fn with every change event after since (0: from the first), in order, as they
// happen. When the server goes away or restarts it reconnects and resumes after the last event
// received, so fn sees each event once. It returns when ctx ends (ctx.Err()), when fn returns
// an error (that error), or on an error that retrying cannot cure (a wrong token, ...).
func (c *Client) Watch(ctx context.Context, since uint64, fn func(ChangeEvent) error) error {
	seq := since
	delay := 100 * time.Millisecond
	for {
		err := c.watchOnce(ctx, &seq, fn, &delay)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var stop stopWatch
		if errors.As(err, &stop) {
			return stop.err
		}
		if err != nil && !retryable(Code(err)) {
			return err
		}
		select { // the stream ended (server restart or shutdown): resume after a pause
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(jitter(delay)):
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}

type stopWatch struct{ err error }

func (s stopWatch) Error() string { return s.err.Error() }

func (c *Client) watchOnce(ctx context.Context, seq *uint64, fn func(ChangeEvent) error, delay *time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	since := *seq
	stream, err := c.api.Watch(ctx, &v1.WatchRequest{Since: &since}, grpc.WaitForReady(true))
	if err != nil {
		return c.wrap(err)
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return c.wrap(err)
		}
		*delay = 100 * time.Millisecond
		if m.Seq <= *seq {
			continue // already delivered before a reconnect
		}
		*seq = m.Seq
		if err := fn(changeOf(m)); err != nil {
			return stopWatch{err}
		}
	}
}
