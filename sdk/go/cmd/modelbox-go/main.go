// Command modelbox-go drives the Go SDK against a modelbox server: it logs synthetic metric
// points, reads a run back, downloads a model, follows the change feed, and times LogMetric.
// The project's tests and benchmarks run it; every subcommand prints JSON lines.
//
//	modelbox-go log      -uri grpc://127.0.0.1:50051 -points 100000 [-keys 2] [-lose-ack 2] [-rate 0]
//	modelbox-go read     -uri ... -run RUN_ID
//	modelbox-go download -uri ... -model REF -dest DIR
//	modelbox-go watch    -uri ... -since SEQ -count N [-timeout-s 60]
//	modelbox-go bench    -uri ... -points 200000
//
// The token comes from MODELBOX_TOKEN (or -token).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"modelbox.dev/sdk/go/modelbox"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: modelbox-go log|read|download|watch|bench [flags]")
		os.Exit(2)
	}
	commands := map[string]func([]string) error{
		"log": logCmd, "read": readCmd, "download": downloadCmd, "watch": watchCmd, "bench": benchCmd,
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "modelbox-go: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := cmd(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "modelbox-go %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

type common struct {
	uri, token string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.uri, "uri", "grpc://127.0.0.1:50051", "server URI")
	fs.StringVar(&c.token, "token", "", "token (default: MODELBOX_TOKEN)")
}

func emit(v any) {
	out, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
}

// loseAnswer makes the n-th WriteBatch call look failed after the server has stored it: the
// answer is "lost", so the SDK re-sends the same batch id and the server must not store it twice.
func loseAnswer(n int64) grpc.UnaryClientInterceptor {
	var calls int64
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil && method == "/modelbox.v1.ModelBox/WriteBatch" && atomic.AddInt64(&calls, 1) == n {
			return status.Error(codes.Unavailable, "answer lost on purpose (modelbox-go -lose-ack)")
		}
		return err
	}
}

func logCmd(args []string) error {
	fs := flag.NewFlagSet("log", flag.ExitOnError)
	var c common
	c.register(fs)
	experiment := fs.String("experiment", "go-sdk", "experiment")
	name := fs.String("name", "go-run", "run name")
	points := fs.Int("points", 100_000, "metric points in all")
	keys := fs.Int("keys", 2, "metric series the points are spread over")
	loseAck := fs.Int64("lose-ack", 0, "lose the answer to this WriteBatch call (1-based; 0: none)")
	rate := fs.Float64("rate", 0, "points per second (0: as fast as possible)")
	batch := fs.Int("batch", 0, "points per batch (0: the SDK's default)")
	closeTimeout := fs.Float64("close-timeout-s", 0, "how long End and Close wait for the server (0: the SDK's default)")
	_ = fs.Parse(args)

	opts := modelbox.Options{Token: c.token, BatchPoints: *batch, CloseTimeout: time.Duration(*closeTimeout * float64(time.Second))}
	if *loseAck > 0 {
		opts.DialOptions = append(opts.DialOptions, grpc.WithChainUnaryInterceptor(loseAnswer(*loseAck)))
	}
	client, err := modelbox.Dial(c.uri, opts)
	if err != nil {
		return err
	}
	defer client.Close()
	run, err := client.StartRun(modelbox.RunOptions{Experiment: *experiment, Name: *name, Tags: map[string]string{"sdk": "go"}})
	if err != nil {
		return err
	}
	emit(map[string]any{"run_id": run.ID()})
	run.LogParams(map[string]any{"lr": 0.001, "optimizer": map[string]any{"name": "adam", "betas": []float64{0.9, 0.99}}, "points": *points})
	done := run.Event("logging", map[string]any{"points": *points})
	keyNames := make([]string, *keys)
	for k := range keyNames {
		keyNames[k] = fmt.Sprintf("metric_%d", k)
	}
	start := time.Now()
	for i := 0; i < *points; i++ {
		k := i % *keys
		step := int64(i / *keys)
		run.LogMetricEpoch(keyNames[k], float64(step)*0.5+float64(k), step, step/1000)
		if *rate > 0 && i%100 == 99 {
			if ahead := time.Duration(float64(i+1)/(*rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		if i%(*points/10+1) == 0 {
			run.SetProgress(float64(i) / float64(*points))
		}
	}
	done()
	run.LogEvent("done", map[string]any{"points": *points})
	run.SetProgress(1)
	endErr := run.End(modelbox.Finished)
	closeErr := client.Close() // what End could not store in time is given up on, and counted
	emit(map[string]any{"run_id": run.ID(), "seconds": time.Since(start).Seconds(), "ok": endErr == nil && closeErr == nil, "stats": client.Stats()})
	if endErr != nil {
		return endErr
	}
	return closeErr
}

func readCmd(args []string) error {
	fs := flag.NewFlagSet("read", flag.ExitOnError)
	var c common
	c.register(fs)
	runID := fs.String("run", "", "run id")
	_ = fs.Parse(args)
	client, err := modelbox.Dial(c.uri, modelbox.Options{Token: c.token})
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := context.Background()
	info, err := client.GetRun(ctx, *runID)
	if err != nil {
		return err
	}
	keys, err := client.MetricKeys(ctx, info.ID)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	distinct := map[string]int{}
	for _, key := range keys {
		points, err := client.Metrics(ctx, info.ID, key)
		if err != nil {
			return err
		}
		counts[key] = len(points)
		steps := map[int64]bool{}
		for _, p := range points {
			steps[p.Step] = true
		}
		distinct[key] = len(steps)
	}
	events, err := client.Events(ctx, info.ID, "")
	if err != nil {
		return err
	}
	names := make([]string, 0, len(events))
	for _, e := range events {
		names = append(names, e.Name)
	}
	sort.Strings(names)
	runs, err := client.Runs(ctx, modelbox.RunsQuery{Experiment: info.Experiment})
	if err != nil {
		return err
	}
	models, err := client.Models(ctx, modelbox.ModelsQuery{RunID: info.ID})
	if err != nil {
		return err
	}
	modelIDs := make([]string, 0, len(models))
	for _, m := range models {
		modelIDs = append(modelIDs, m.ID)
	}
	emit(map[string]any{
		"id": info.ID, "name": info.Name, "status": info.Status, "experiment": info.Experiment, "params": info.Params,
		"tags": info.Tags, "progress": info.Progress, "counts": counts, "distinct_steps": distinct, "events": names,
		"runs_in_experiment": len(runs), "ended": !info.EndTime.IsZero(), "models": modelIDs,
	})
	return nil
}

func downloadCmd(args []string) error {
	fs := flag.NewFlagSet("download", flag.ExitOnError)
	var c common
	c.register(fs)
	ref := fs.String("model", "", "model reference (id, id prefix, NAME@ALIAS where the server supports it)")
	dest := fs.String("dest", ".", "destination folder")
	_ = fs.Parse(args)
	client, err := modelbox.Dial(c.uri, modelbox.Options{Token: c.token})
	if err != nil {
		return err
	}
	defer client.Close()
	got, err := client.DownloadModel(context.Background(), *ref, *dest)
	if err != nil {
		emit(map[string]any{"error": err.Error(), "code": modelbox.Code(err).String()})
		return err
	}
	for _, f := range got.Files {
		emit(map[string]any{"model_id": got.Model.ID, "name": f.Name, "path": f.Path, "bytes": f.Bytes, "sha256": f.SHA256})
	}
	return nil
}

func watchCmd(args []string) error {
	fs := flag.NewFlagSet("watch", flag.ExitOnError)
	var c common
	c.register(fs)
	since := fs.Int64("since", -1, "sequence number to follow from (-1: from now on)")
	count := fs.Int("count", 1, "stop after this many events")
	timeout := fs.Float64("timeout-s", 60, "give up after this many seconds")
	_ = fs.Parse(args)
	client, err := modelbox.Dial(c.uri, modelbox.Options{Token: c.token})
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*timeout*float64(time.Second)))
	defer cancel()
	from := uint64(*since)
	if *since < 0 {
		if from, err = client.LastChangeSeq(ctx); err != nil {
			return err
		}
	}
	emit(map[string]any{"watching_from": from})
	seen := 0
	errEnough := errors.New("enough")
	err = client.Watch(ctx, from, func(e modelbox.ChangeEvent) error {
		emit(map[string]any{"seq": e.Seq, "kind": e.Kind, "object_type": e.ObjectType, "object_id": e.ObjectID, "payload": e.Payload,
			"actor": e.Actor})
		seen++
		if seen >= *count {
			return errEnough
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		return nil
	}
	return err
}

// benchCmd times LogMetric in the calling goroutine (the writer goroutine sending meanwhile):
// per block of 1,000 calls, whose median is the typical cost of a call and whose mean includes
// the occasional batch hand-over or preemption; then the whole run, until the server has stored
// every point.
func benchCmd(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	var c common
	c.register(fs)
	points := fs.Int("points", 200_000, "points to log")
	_ = fs.Parse(args)
	client, err := modelbox.Dial(c.uri, modelbox.Options{Token: c.token})
	if err != nil {
		return err
	}
	defer client.Close()
	run, err := client.StartRun(modelbox.RunOptions{Experiment: "bench-sdks", Name: "go"})
	if err != nil {
		return err
	}
	const block = 1000
	blocks := make([]float64, 0, *points/block+1)
	start := time.Now()
	for i := 0; i < *points; {
		t0 := time.Now()
		end := i + block
		if end > *points {
			end = *points
		}
		for ; i < end; i++ {
			run.LogMetric("loss", float64(i), int64(i))
		}
		blocks = append(blocks, float64(time.Since(t0).Nanoseconds())/block)
	}
	logged := time.Since(start)
	endErr := run.End(modelbox.Finished)
	total := time.Since(start)
	sort.Float64s(blocks)
	emit(map[string]any{
		"sdk": "go", "points": *points, "log_seconds": logged.Seconds(), "total_seconds": total.Seconds(),
		"ns_per_call": blocks[len(blocks)/2], "ns_per_call_mean": float64(logged.Nanoseconds()) / float64(*points),
		"points_per_s": float64(*points) / total.Seconds(), "run_id": run.ID(), "ok": endErr == nil, "stats": client.Stats(),
	})
	return endErr
}
