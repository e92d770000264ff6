package modelbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	v1 "modelbox.dev/sdk/go/modelboxv1"
)

// Run statuses, as stored by the server.
const (
	Running  = "running"
	Finished = "finished"
	Failed   = "failed"
	Killed   = "killed"
)

// RunOptions describe a new run. The zero value is valid: the experiment is then the
// program's name, as the Python SDK uses the script's name.
type RunOptions struct {
	Experiment  string
	Name        string
	Tags        map[string]string
	ParentRunID string
	// ID of the run; empty draws a fresh one. Giving the id of a run that exists continues it
	// (its start is not recorded twice).
	ID string
}

// Run is a run being logged. Every Log* method returns at once: records are appended to the
// client's in-memory batch and sent by its writer goroutine. Safe for concurrent use.
type Run struct {
	id    string
	index uint32 // in the writer's run table
	c     *Client
	w     *writer
	ended atomic.Bool
}

// StartRun records the start of a run (sent with the first batch; no network call here).
func (c *Client) StartRun(opts RunOptions) (*Run, error) {
	w := c.logger()
	if w == nil {
		return nil, errors.New("modelbox: StartRun on a closed client")
	}
	if opts.Experiment == "" {
		opts.Experiment = strings.TrimSuffix(filepath.Base(os.Args[0]), filepath.Ext(os.Args[0]))
	}
	if !validName(opts.Experiment, false) || !validName(opts.Name, true) {
		return nil, fmt.Errorf("modelbox: experiment %q or run name %q is empty, too long or contains a NUL byte", opts.Experiment, opts.Name)
	}
	for k, v := range opts.Tags {
		if !validName(k, false) || !validName(v, true) {
			return nil, fmt.Errorf("modelbox: tag %q is empty, too long or contains a NUL byte", k)
		}
	}
	id := opts.ID
	if id == "" {
		id = newID()
	} else if !validID(id) {
		return nil, fmt.Errorf("modelbox: run id %q is not 1-128 of A-Z a-z 0-9 . _ : -", id)
	}
	if opts.ParentRunID != "" && !validID(opts.ParentRunID) {
		return nil, fmt.Errorf("modelbox: parent run id %q is not 1-128 of A-Z a-z 0-9 . _ : -", opts.ParentRunID)
	}
	now := time.Now()
	start := &v1.RunStart{RunId: id, Experiment: opts.Experiment, StartTime: unixSeconds(now), Tags: copyTags(opts.Tags)}
	if opts.Name != "" {
		start.Name = &opts.Name
	}
	if opts.ParentRunID != "" {
		start.ParentRunId = &opts.ParentRunID
	}
	w.add(now, func(b *batch) { b.starts = append(b.starts, start) })
	return &Run{id: id, index: w.registerRun(id), c: c, w: w}, nil
}

func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		alnum := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9'
		if !alnum && (i == 0 || (ch != '.' && ch != '_' && ch != ':' && ch != '-')) {
			return false
		}
	}
	return true
}

func copyTags(tags map[string]string) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		out[k] = v
	}
	return out
}

// ID is the run's id (32 hex characters unless given in RunOptions).
func (r *Run) ID() string { return r.id }

// LogMetric records one point of a metric series. It only appends to memory (well under a
// microsecond); a key the server would refuse is dropped when its batch is sent, and counted.
func (r *Run) LogMetric(key string, value float64, step int64) {
	now := time.Now()
	r.w.addPoint(point{run: r.index, value: value, step: step, ts: unixSeconds(now)}, key, now)
}

// LogMetricEpoch is LogMetric with the epoch the point belongs to.
func (r *Run) LogMetricEpoch(key string, value float64, step, epoch int64) {
	now := time.Now()
	r.w.addPoint(point{run: r.index, value: value, step: step, ts: unixSeconds(now), epoch: epoch, hasEpoch: true}, key, now)
}

// LogMetrics records several metrics at one step.
func (r *Run) LogMetrics(values map[string]float64, step int64) {
	now := time.Now()
	ts := unixSeconds(now)
	for key, value := range values {
		r.w.addPoint(point{run: r.index, value: value, step: step, ts: ts}, key, now)
	}
}

// LogParam records a parameter; the value is stored as JSON (its %v text when it is not
// JSON-encodable). A key logged again replaces the value.
func (r *Run) LogParam(key string, value any) {
	if !validName(key, false) {
		r.dropInvalid("param key is empty, too long or contains a NUL byte")
		return
	}
	text := jsonText(value)
	if len(text) > maxTextChars {
		r.dropInvalid("param value is larger than 16 MiB as JSON")
		return
	}
	p := &v1.Param{RunId: r.id, Key: key, ValueJson: text}
	r.w.add(time.Now(), func(b *batch) { b.params = append(b.params, p) })
}

// LogParams records several parameters; nested maps become dotted keys (optimizer.name).
func (r *Run) LogParams(params map[string]any) {
	flat := make(map[string]any, len(params))
	flatten("", params, flat)
	for k, v := range flat {
		r.LogParam(k, v)
	}
}

// LogEvent records a named moment with attributes (JSON-encoded; nil for none).
func (r *Run) LogEvent(name string, attrs map[string]any) {
	r.event(name, time.Now(), nil, attrs)
}

// Event starts a timed event and returns the function that ends it:
//
//	defer run.Event("evaluate", nil)()
func (r *Run) Event(name string, attrs map[string]any) (end func()) {
	start := time.Now()
	return func() {
		d := time.Since(start).Seconds()
		r.event(name, start, &d, attrs)
	}
}

func (r *Run) event(name string, at time.Time, duration *float64, attrs map[string]any) {
	if !validName(name, false) {
		r.dropInvalid("event name is empty, too long or contains a NUL byte")
		return
	}
	e := &v1.Event{Id: newID(), RunId: r.id, Name: name, Timestamp: unixSeconds(at), DurationS: duration, AttrsJson: attrsJSON(attrs)}
	r.w.add(time.Now(), func(b *batch) { b.events = append(b.events, e) })
}

// SetProgress records how far the run is, from 0 to 1.
func (r *Run) SetProgress(fraction float64) {
	if fraction < 0 {
		fraction = 0
	} else if fraction > 1 {
		fraction = 1
	}
	r.update(&v1.RunUpdate{RunId: r.id, Progress: &fraction})
}

// SetTags merges tags into the run's tags.
func (r *Run) SetTags(tags map[string]string) {
	for k, v := range tags {
		if !validName(k, false) || !validName(v, true) {
			r.dropInvalid("tag key or value is empty, too long or contains a NUL byte")
			return
		}
	}
	r.update(&v1.RunUpdate{RunId: r.id, Tags: copyTags(tags)})
}

func (r *Run) update(u *v1.RunUpdate) {
	r.w.add(time.Now(), func(b *batch) { b.updates = append(b.updates, u) })
}

func (r *Run) dropInvalid(reason string) {
	r.w.mu.Lock()
	r.w.dropLocked(reason, 1)
	r.w.mu.Unlock()
}

// Flush waits until everything logged before the call (by any run of this client) is stored,
// or ctx ends. It returns an error when records were dropped meanwhile, or on ctx's end.
func (r *Run) Flush(ctx context.Context) error {
	return r.w.flush(ctx)
}

// End marks the run finished, failed or killed, and waits (at most Options.CloseTimeout)
// until everything logged so far is stored. Ending twice does nothing.
func (r *Run) End(status string) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.c.opts.CloseTimeout)
	defer cancel()
	return r.EndContext(ctx, status)
}

// EndContext is End with the caller's deadline.
func (r *Run) EndContext(ctx context.Context, status string) error {
	switch status {
	case Finished, Failed, Killed:
	default:
		return fmt.Errorf("modelbox: run status %q is not one of finished, failed, killed", status)
	}
	if r.ended.Swap(true) {
		return nil
	}
	end := unixSeconds(time.Now())
	r.update(&v1.RunUpdate{RunId: r.id, Status: &status, EndTime: &end})
	return r.w.flush(ctx)
}
