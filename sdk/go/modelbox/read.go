package modelbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"time"

	"google.golang.org/grpc/codes"

	v1 "modelbox.dev/sdk/go/modelboxv1"
)

// Experiment is a named group of runs.
type Experiment struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// RunInfo is a run as stored by the server.
type RunInfo struct {
	ID           string
	ExperimentID string
	Experiment   string
	Name         string
	Status       string // running | finished | failed | killed
	StartTime    time.Time
	EndTime      time.Time // zero while running
	Progress     *float64  // nil when never set
	ParentRunID  string
	Params       map[string]any // decoded JSON values
	Tags         map[string]string
	Env          map[string]any
}

// MetricPoint is one point of a metric series.
type MetricPoint struct {
	Step      int64
	Value     float64
	Timestamp float64 // seconds since the Unix epoch, as logged
	Epoch     int64
	HasEpoch  bool
}

// Event is a named moment of a run, with its duration when it was timed.
type Event struct {
	Name      string
	Timestamp time.Time
	Duration  *time.Duration
	Attrs     map[string]any
}

// Artifact is a file kept with a run; Path is what Download takes.
type Artifact struct {
	ID     string
	Name   string
	Path   string
	Bytes  int64 // -1: the file was missing when it was logged
	SHA256 string
	Kind   string
}

// Experiments lists the server's experiments.
func (c *Client) Experiments(ctx context.Context) ([]Experiment, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.api.ListExperiments(ctx, &v1.ListExperimentsRequest{})
	if err != nil {
		return nil, c.wrap(err)
	}
	out := make([]Experiment, 0, len(resp.Experiments))
	for _, e := range resp.Experiments {
		out = append(out, Experiment{ID: e.Id, Name: e.Name, CreatedAt: fromSeconds(e.CreatedAt)})
	}
	return out, nil
}

// RunsQuery selects runs; the zero value selects every run.
type RunsQuery struct {
	Experiment string // name or id
	Status     string
	Limit      int // 0: no limit
}

// Runs lists runs, newest first.
func (c *Client) Runs(ctx context.Context, q RunsQuery) ([]RunInfo, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	req := &v1.ListRunsRequest{Limit: uint32(q.Limit)}
	if q.Experiment != "" {
		req.Experiment = &q.Experiment
	}
	if q.Status != "" {
		req.Status = &q.Status
	}
	resp, err := c.api.ListRuns(ctx, req)
	if err != nil {
		return nil, c.wrap(err)
	}
	out := make([]RunInfo, 0, len(resp.Runs))
	for _, r := range resp.Runs {
		info, err := runInfo(r)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// GetRun is one run, by id or a unique prefix of at least 4 characters.
func (c *Client) GetRun(ctx context.Context, runID string) (RunInfo, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.api.GetRun(ctx, &v1.GetRunRequest{RunId: runID})
	if err != nil {
		return RunInfo{}, c.wrap(err)
	}
	return runInfo(resp)
}

func runInfo(r *v1.RunInfo) (RunInfo, error) {
	info := RunInfo{
		ID: r.Id, ExperimentID: r.ExperimentId, Experiment: r.Experiment, Name: r.GetName(), Status: r.Status,
		StartTime: fromSeconds(r.StartTime), EndTime: fromSeconds(r.GetEndTime()), Progress: r.Progress,
		ParentRunID: r.GetParentRunId(), Tags: r.Tags, Params: make(map[string]any, len(r.ParamsJson)),
	}
	for k, text := range r.ParamsJson {
		info.Params[k] = decodeJSON(text)
	}
	if r.EnvJson != "" {
		if env, ok := decodeJSON(r.EnvJson).(map[string]any); ok {
			info.Env = env
		}
	}
	return info, nil
}

// decodeJSON reads JSON as the Python SDK writes it (NaN and Infinity included); text that is
// not JSON is returned as the string itself.
func decodeJSON(text string) any {
	switch text {
	case "NaN":
		return math.NaN()
	case "Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return text
	}
	return v
}

// MetricKeys lists the metric series of a run.
func (c *Client) MetricKeys(ctx context.Context, runID string) ([]string, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.api.ListMetricKeys(ctx, &v1.RunRequest{RunId: runID})
	if err != nil {
		return nil, c.wrap(err)
	}
	return resp.Keys, nil
}

// Metrics is one metric series of a run, in the order it was stored (streamed in pages).
func (c *Client) Metrics(ctx context.Context, runID, key string) ([]MetricPoint, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	stream, err := c.api.GetMetrics(ctx, &v1.GetMetricsRequest{RunId: runID, Key: key})
	if err != nil {
		return nil, c.wrap(err)
	}
	var out []MetricPoint
	for {
		page, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, c.wrap(err)
		}
		n := len(page.Steps)
		if len(page.Values) != n || len(page.Timestamps) != n || (len(page.Epochs) != 0 && len(page.Epochs) != n) {
			return nil, &Error{Code: codes.Internal, Message: "metric page columns have different lengths", Target: c.target}
		}
		start := len(out)
		for i := 0; i < n; i++ {
			p := MetricPoint{Step: page.Steps[i], Value: page.Values[i], Timestamp: page.Timestamps[i]}
			if len(page.Epochs) == n && n > 0 {
				p.Epoch, p.HasEpoch = page.Epochs[i], true
			}
			out = append(out, p)
		}
		for _, i := range page.NoEpoch {
			if int(i) < n {
				out[start+int(i)].Epoch, out[start+int(i)].HasEpoch = 0, false
			}
		}
	}
}

// Events lists a run's events; name "" lists all of them.
func (c *Client) Events(ctx context.Context, runID, name string) ([]Event, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	req := &v1.ListEventsRequest{RunId: runID}
	if name != "" {
		req.Name = &name
	}
	resp, err := c.api.ListEvents(ctx, req)
	if err != nil {
		return nil, c.wrap(err)
	}
	out := make([]Event, 0, len(resp.Events))
	for _, e := range resp.Events {
		ev := Event{Name: e.Name, Timestamp: fromSeconds(e.Timestamp)}
		if e.DurationS != nil {
			d := time.Duration(*e.DurationS * float64(time.Second))
			ev.Duration = &d
		}
		if attrs, ok := decodeJSON(e.AttrsJson).(map[string]any); ok {
			ev.Attrs = attrs
		}
		out = append(out, ev)
	}
	return out, nil
}

// Artifacts lists the files kept with a run.
func (c *Client) Artifacts(ctx context.Context, runID string) ([]Artifact, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.api.ListArtifacts(ctx, &v1.RunRequest{RunId: runID})
	if err != nil {
		return nil, c.wrap(err)
	}
	out := make([]Artifact, 0, len(resp.Artifacts))
	for _, a := range resp.Artifacts {
		out = append(out, Artifact{ID: a.Id, Name: a.Name, Path: a.Path, Bytes: optBytes(a.Bytes), SHA256: a.GetSha256(), Kind: a.Kind})
	}
	return out, nil
}

func optBytes(b *uint64) int64 {
	if b == nil {
		return -1
	}
	return int64(*b)
}
