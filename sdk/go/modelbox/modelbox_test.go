package modelbox

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	v1 "modelbox.dev/sdk/go/modelboxv1"
)

func TestParseURI(t *testing.T) {
	cases := []struct {
		uri, target string
		tls, bad    bool
	}{
		{"grpc://127.0.0.1:6000", "127.0.0.1:6000", false, false},
		{"grpcs://models.example:443", "models.example:443", true, false},
		{"GRPC://host", "host:50051", false, false},
		{"grpc://[::1]:7000", "[::1]:7000", false, false},
		{"http://host:1", "", false, true},
		{"grpc://host:1/path", "", false, true},
		{"grpc://host:99999", "", false, true},
		{"grpc://:5000", "", false, true},
	}
	for _, c := range cases {
		target, useTLS, err := ParseURI(c.uri)
		if c.bad {
			if err == nil {
				t.Errorf("%s: accepted as %s", c.uri, target)
			}
			continue
		}
		if err != nil || target != c.target || useTLS != c.tls {
			t.Errorf("%s: got %q tls=%v err=%v", c.uri, target, useTLS, err)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, ok := range []string{"a", "0f3a", "run.1_x:y-z"} {
		if !validID(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "-a", "a b", "a/b", string(make([]byte, 129))} {
		if validID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
	if id := newID(); len(id) != 32 || !validID(id) || id == newID() {
		t.Errorf("newID gave %q", id)
	}
}

func TestJSONText(t *testing.T) {
	cases := map[string]any{
		"0.001": 0.001, "NaN": math.NaN(), "-Infinity": math.Inf(-1), `"adam"`: "adam",
		"[1,2]": []int{1, 2}, "true": true,
	}
	for want, v := range cases {
		if got := jsonText(v); got != want {
			t.Errorf("jsonText(%v) = %s, want %s", v, got, want)
		}
	}
	if got := jsonText(make(chan int)); got[0] != '"' {
		t.Errorf("a channel should become its text, got %s", got)
	}
	if got := attrsJSON(map[string]any{"b": 1, "a": "x"}); got != `{"a":"x","b":1}` {
		t.Errorf("attrsJSON: %s", got)
	}
	flat := map[string]any{}
	flatten("", map[string]any{"opt": map[string]any{"name": "adam", "b": map[string]any{"c": 1}}, "lr": 0.1}, flat)
	if len(flat) != 3 || flat["opt.name"] != "adam" || flat["opt.b.c"] != 1 || flat["lr"] != 0.1 {
		t.Errorf("flatten: %v", flat)
	}
}

func TestEncodePointsColumns(t *testing.T) {
	runs := []string{"r0", "r1", "r2"}
	keys := []string{"unused", "loss", "acc", "bad\x00key"}
	points := []point{
		{run: 1, key: 1, value: 1, step: 0, ts: 10},
		{run: 1, key: 2, value: 0.5, step: 0, ts: 10, epoch: 3, hasEpoch: true},
		{run: 2, key: 1, value: 2, step: 1, ts: 11},
		{run: 2, key: 3, value: 9, step: 1, ts: 11},
		{run: 1, key: 1, value: 3, step: 2, ts: 12, epoch: 4, hasEpoch: true},
	}
	req := &v1.WriteBatchRequest{}
	invalid := encodePoints(points, runs, keys, req)
	cols := req.Metrics
	if len(invalid) != 1 || cols == nil || len(cols.Values) != 4 {
		t.Fatalf("invalid=%v cols=%v", invalid, cols)
	}
	if len(cols.RunIds) != 2 || len(cols.Keys) != 2 {
		t.Fatalf("dictionaries: %v %v", cols.RunIds, cols.Keys)
	}
	for i, want := range []struct {
		run, key string
		value    float64
	}{{"r1", "loss", 1}, {"r1", "acc", 0.5}, {"r2", "loss", 2}, {"r1", "loss", 3}} {
		if cols.RunIds[cols.RunIndex[i]] != want.run || cols.Keys[cols.KeyIndex[i]] != want.key || cols.Values[i] != want.value {
			t.Errorf("point %d: %s %s %v", i, cols.RunIds[cols.RunIndex[i]], cols.Keys[cols.KeyIndex[i]], cols.Values[i])
		}
	}
	if len(cols.Epochs) != 4 || cols.Epochs[1] != 3 || cols.Epochs[3] != 4 || len(cols.NoEpoch) != 2 || cols.NoEpoch[0] != 0 || cols.NoEpoch[1] != 2 {
		t.Errorf("epochs %v no_epoch %v", cols.Epochs, cols.NoEpoch)
	}
}

func TestInsideDir(t *testing.T) {
	dir := t.TempDir()
	if got, err := insideDir(dir, "sub/model.bin"); err != nil || got != filepath.Join(dir, "sub", "model.bin") {
		t.Errorf("got %s %v", got, err)
	}
	for _, bad := range []string{"", "../x", "/etc/passwd", "a/../../x", "."} {
		if _, err := insideDir(dir, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if safeFolderName("../../x-v1") != ".._.._x-v1" || safeFolderName("..") != "model" {
		t.Errorf("safeFolderName: %s", safeFolderName("../../x-v1"))
	}
}

func TestTimes(t *testing.T) {
	now := time.Now()
	if d := fromSeconds(unixSeconds(now)).Sub(now); d > time.Microsecond || d < -time.Microsecond {
		t.Errorf("round trip off by %v", d)
	}
	if !fromSeconds(0).IsZero() {
		t.Error("0 should be the zero time")
	}
}

// The hot path without a server: appending must not block, and the records wait in memory.
func BenchmarkLogMetric(b *testing.B) {
	client, err := Dial("grpc://127.0.0.1:1", Options{MaxPending: 1 << 30, FlushInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { // nothing can be sent to port 1: give up at once
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = client.Shutdown(ctx)
	})
	run, _ := client.StartRun(RunOptions{Experiment: "bench"})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run.LogMetric("loss", float64(i), int64(i))
	}
}
