package modelbox

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	v1 "modelbox.dev/sdk/go/modelboxv1"
)

// Stats counts what a client's logger did so far.
type Stats struct {
	Logged       uint64            `json:"logged"`         // records accepted by Log* calls (a metric point is one record)
	Stored       uint64            `json:"stored"`         // records the server confirmed
	Dropped      uint64            `json:"dropped"`        // records given up on, for the reasons in DropReasons
	DropReasons  map[string]uint64 `json:"drop_reasons"`   // reason -> records
	Pending      int               `json:"pending"`        // records waiting in memory
	Batches      uint64            `json:"batches"`        // WriteBatch calls that succeeded
	Duplicates   uint64            `json:"duplicates"`     // of those, batches the server had already stored (a re-send)
	Retries      uint64            `json:"retries"`        // WriteBatch attempts that failed and were tried again
	LastError    string            `json:"last_error"`     // the last failure, retried or not
	LastErrorAge time.Duration     `json:"last_error_age"` // how long ago it happened
}

// point is one metric point on its way to the server. It holds no pointer (the run and the
// key are indexes into the writer's tables), so a million waiting points cost the garbage
// collector nothing to scan.
type point struct {
	run      uint32
	key      uint32
	value    float64
	step     int64
	ts       float64
	epoch    int64
	hasEpoch bool
}

// batch is the records cut together into one WriteBatch request. Its id is drawn once and
// kept across every attempt: the server stores a batch id at most once, so a retry after a
// lost answer never stores anything twice.
type batch struct {
	id      string
	starts  []*v1.RunStart
	params  []*v1.Param
	points  []point
	events  []*v1.Event
	updates []*v1.RunUpdate
	records int
	lastSeq uint64    // sequence number of its last record
	since   time.Time // when its first record was logged
}

// writer is the in-memory queue of a Client and the goroutine that sends it: the calling
// goroutine only appends to the current batch under a mutex; encoding, the network and
// retries happen on the writer goroutine, one batch at a time, in order.
type writer struct {
	c        *Client
	name     string
	maxBatch int
	interval time.Duration
	maxPend  int

	mu         sync.Mutex
	runIDs     []string          // point.run -> run id
	keys       []string          // point.key -> metric key
	keyIndex   map[string]uint32 // metric key -> point.key
	cur        *batch
	sealed     []*batch
	pending    int
	logged     uint64 // sequence number of the last record accepted
	done       uint64 // every record up to this sequence number is stored or dropped
	stored     uint64
	dropped    uint64
	reasons    map[string]uint64
	batches    uint64
	duplicates uint64
	retries    uint64
	lastErr    string
	lastErrAt  time.Time
	flushWant  bool
	closing    bool
	abandon    bool
	progress   chan struct{}   // closed (and replaced) whenever `done` moves or the writer stops
	giveUp     context.Context // cancelled when Shutdown stops waiting: ends a call in flight
	giveUpNow  context.CancelFunc
	wake       chan struct{}
	stopped    chan struct{}
	pool       sync.Pool // []point buffers, reused once sent
}

func newWriter(c *Client) *writer {
	host, _ := os.Hostname()
	w := &writer{
		c:        c,
		name:     fmt.Sprintf("go:%s:%d", host, os.Getpid()),
		maxBatch: c.opts.BatchPoints,
		interval: c.opts.FlushInterval,
		maxPend:  c.opts.MaxPending,
		reasons:  map[string]uint64{},
		keyIndex: map[string]uint32{},
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		stopped:  make(chan struct{}),
	}
	w.giveUp, w.giveUpNow = context.WithCancel(context.Background())
	w.cur = w.newBatch()
	go w.loop()
	return w
}

func (w *writer) newBatch() *batch {
	b := &batch{}
	if buf, ok := w.pool.Get().([]point); ok {
		b.points = buf[:0]
	} else {
		b.points = make([]point, 0, w.maxBatch)
	}
	return b
}

func (w *writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// admitLocked accepts one more record, or counts it dropped when memory is full or the
// client is closed.
func (w *writer) admitLocked(now time.Time) bool {
	if w.closing {
		w.dropLocked("logged after the client was closed", 1)
		return false
	}
	if w.pending >= w.maxPend {
		w.dropLocked(fmt.Sprintf("more than %d records waiting for the server (Options.MaxPending)", w.maxPend), 1)
		return false
	}
	if w.cur.records == 0 {
		w.cur.since = now
	}
	w.cur.records++
	w.pending++
	w.logged++
	w.cur.lastSeq = w.logged
	return true
}

func (w *writer) dropLocked(reason string, n int) {
	if n <= 0 {
		return
	}
	w.dropped += uint64(n)
	if _, seen := w.reasons[reason]; !seen {
		w.c.opts.Logf("dropping records: %s", reason)
	}
	w.reasons[reason] += uint64(n)
}

// sealLocked moves the current batch to the send queue.
func (w *writer) sealLocked() {
	if w.cur.records == 0 {
		return
	}
	w.sealed = append(w.sealed, w.cur)
	w.cur = w.newBatch()
}

// registerRun gives a run its index in point.run.
func (w *writer) registerRun(id string) uint32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.runIDs = append(w.runIDs, id)
	return uint32(len(w.runIDs) - 1)
}

// addPoint is the hot path of Run.LogMetric: one map lookup and one append under the mutex.
func (w *writer) addPoint(p point, key string, now time.Time) {
	w.mu.Lock()
	if w.admitLocked(now) {
		k, ok := w.keyIndex[key]
		if !ok {
			k = uint32(len(w.keys))
			w.keys = append(w.keys, key)
			w.keyIndex[key] = k
		}
		p.key = k
		w.cur.points = append(w.cur.points, p)
		if len(w.cur.points) >= w.maxBatch {
			w.sealLocked()
			w.mu.Unlock()
			w.signal()
			return
		}
	}
	w.mu.Unlock()
}

// add queues one record of another kind (run start or update, param, event).
func (w *writer) add(now time.Time, put func(b *batch)) {
	w.mu.Lock()
	if w.admitLocked(now) {
		put(w.cur)
	}
	w.mu.Unlock()
}

// next is the batch to send now, or how long to wait for one; stop once closed and empty.
func (w *writer) next() (b *batch, wait time.Duration, stop bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.sealed) == 0 && w.cur.records > 0 {
		age := time.Since(w.cur.since)
		if w.flushWant || w.closing || age >= w.interval {
			w.sealLocked()
		} else {
			wait = w.interval - age
		}
	}
	w.flushWant = false
	if len(w.sealed) > 0 {
		b = w.sealed[0]
		w.sealed[0] = nil
		w.sealed = w.sealed[1:]
		return b, 0, false
	}
	if wait == 0 {
		wait = w.interval
	}
	return nil, wait, w.closing
}

func (w *writer) loop() {
	defer close(w.stopped)
	timer := time.NewTimer(w.interval)
	defer timer.Stop()
	for {
		b, wait, stop := w.next()
		if b != nil {
			w.send(b)
			continue
		}
		if stop {
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-w.wake:
		case <-timer.C:
		}
	}
}

// send writes one batch, retrying transient failures with the same batch id until it is
// stored, refused for good, or the client gives up on it at Shutdown.
func (w *writer) send(b *batch) {
	b.id = newID()
	req, invalid := w.request(b)
	stored, duplicate := false, false
	reason := ""
	delay := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if w.abandoned() {
			reason = "not stored before the client's Shutdown deadline"
			break
		}
		// WaitForReady: while the server is away the call waits for the channel to reconnect
		// (within a second of the server's return) instead of failing at once.
		ctx, cancel := context.WithTimeout(w.giveUp, w.c.opts.WriteTimeout)
		resp, err := w.c.api.WriteBatch(ctx, req, grpc.WaitForReady(true))
		cancel()
		if err == nil {
			stored, duplicate = true, resp.GetDuplicate()
			break
		}
		err = w.c.wrap(err)
		code := Code(err)
		w.noteError(err)
		if !retryable(code) {
			reason = fmt.Sprintf("the server refused a batch: %s: %s", code, errMessage(err))
			if code == codes.Unauthenticated {
				reason = "the server refused the token (Options.Token / MODELBOX_TOKEN)"
			}
			w.c.warnOnce("refused:"+code.String(), "%v", err)
			break
		}
		if attempt == 0 {
			w.c.warnOnce("retrying", "%v; retrying (records wait in memory)", err)
		}
		w.mu.Lock()
		w.retries++
		w.mu.Unlock()
		if !w.sleep(jitter(delay)) {
			continue // woken by Shutdown: the loop top decides
		}
		delay *= 2
		if delay > 5*time.Second {
			delay = 5 * time.Second
		}
	}
	w.finish(b, stored, duplicate, invalid, reason)
}

func errMessage(err error) string {
	if e, ok := err.(*Error); ok {
		return e.Message
	}
	return err.Error()
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

// sleep waits d, or less when Shutdown gives up; false when cut short.
func (w *writer) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-w.wake:
			if w.abandoned() {
				return false
			}
		}
	}
}

func (w *writer) abandoned() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.abandon
}

func (w *writer) noteError(err error) {
	w.mu.Lock()
	w.lastErr = err.Error()
	w.lastErrAt = time.Now()
	w.mu.Unlock()
}

func (w *writer) finish(b *batch, stored, duplicate bool, invalid map[string]int, reason string) {
	w.mu.Lock()
	bad := 0
	for why, n := range invalid {
		w.dropLocked(why, n)
		bad += n
	}
	if stored {
		w.stored += uint64(b.records - bad)
		w.batches++
		if duplicate {
			w.duplicates++
		}
	} else {
		w.dropLocked(reason, b.records-bad)
	}
	w.pending -= b.records
	w.done = b.lastSeq
	close(w.progress)
	w.progress = make(chan struct{})
	w.mu.Unlock()
	if cap(b.points) <= 2*w.maxBatch {
		w.pool.Put(b.points[:0]) //nolint:staticcheck // a slice header is fine here
	}
}

// request encodes a batch; metric points with a key the server would refuse are left out and
// returned by reason, so they cannot make the server refuse the whole batch.
func (w *writer) request(b *batch) (*v1.WriteBatchRequest, map[string]int) {
	req := &v1.WriteBatchRequest{
		BatchId:    b.id,
		Writer:     w.name,
		CreatedAt:  unixSeconds(time.Now()),
		RunStarts:  b.starts,
		Params:     b.params,
		Events:     b.events,
		RunUpdates: b.updates,
	}
	var invalid map[string]int
	if len(b.points) > 0 {
		w.mu.Lock() // the tables only grow: a snapshot covers every index in a sealed batch
		runIDs, keys := w.runIDs, w.keys
		w.mu.Unlock()
		invalid = encodePoints(b.points, runIDs, keys, req)
	}
	return req, invalid
}

func encodePoints(points []point, runIDs, keyNames []string, req *v1.WriteBatchRequest) map[string]int {
	cols := &v1.MetricColumns{
		RunIndex:   make([]uint32, 0, len(points)),
		KeyIndex:   make([]uint32, 0, len(points)),
		Values:     make([]float64, 0, len(points)),
		Steps:      make([]int64, 0, len(points)),
		Timestamps: make([]float64, 0, len(points)),
	}
	// Writer-wide indexes -> this request's dictionaries (-1: a key the server would refuse).
	runs := map[uint32]uint32{}
	keys := map[uint32]int64{}
	var invalid map[string]int
	hasEpoch := false
	for i := range points {
		p := &points[i]
		ki, ok := keys[p.key]
		if !ok {
			ki = -1
			if name := keyNames[p.key]; validName(name, false) {
				ki = int64(len(cols.Keys))
				cols.Keys = append(cols.Keys, name)
			}
			keys[p.key] = ki
		}
		if ki < 0 {
			if invalid == nil {
				invalid = map[string]int{}
			}
			invalid["metric key is empty, longer than 4096 bytes, not UTF-8 or contains a NUL byte"]++
			continue
		}
		ri, ok := runs[p.run]
		if !ok {
			ri = uint32(len(cols.RunIds))
			runs[p.run] = ri
			cols.RunIds = append(cols.RunIds, runIDs[p.run])
		}
		cols.RunIndex = append(cols.RunIndex, ri)
		cols.KeyIndex = append(cols.KeyIndex, uint32(ki))
		cols.Values = append(cols.Values, p.value)
		cols.Steps = append(cols.Steps, p.step)
		cols.Timestamps = append(cols.Timestamps, p.ts)
		hasEpoch = hasEpoch || p.hasEpoch
	}
	if hasEpoch {
		cols.Epochs = make([]int64, 0, len(cols.Values))
		for i := range points {
			p := &points[i]
			if keys[p.key] < 0 {
				continue
			}
			if !p.hasEpoch {
				cols.NoEpoch = append(cols.NoEpoch, uint32(len(cols.Epochs)))
			}
			cols.Epochs = append(cols.Epochs, p.epoch)
		}
	}
	if len(cols.Values) > 0 {
		req.Metrics = cols
	}
	return invalid
}

// flush waits until every record logged before the call is stored or dropped.
func (w *writer) flush(ctx context.Context) error {
	w.mu.Lock()
	target, droppedBefore := w.logged, w.dropped
	w.flushWant = true
	w.mu.Unlock()
	w.signal()
	for {
		w.mu.Lock()
		done, progress, dropped := w.done, w.progress, w.dropped
		stopped := w.closing && w.pending == 0
		w.mu.Unlock()
		if done >= target || stopped {
			if dropped > droppedBefore {
				return fmt.Errorf("modelbox: %d records were dropped (see Client.Stats)", dropped-droppedBefore)
			}
			return nil
		}
		select {
		case <-progress:
		case <-w.stopped:
		case <-ctx.Done():
			return fmt.Errorf("modelbox: flush: %d records not stored yet: %w", w.stats().Pending, ctx.Err())
		}
	}
}

// close sends what is pending until ctx ends, then gives up on the rest (counted as dropped).
func (w *writer) close(ctx context.Context) error {
	w.mu.Lock()
	w.closing = true
	droppedBefore := w.dropped
	w.mu.Unlock()
	w.signal()
	select {
	case <-w.stopped:
	case <-ctx.Done():
		w.mu.Lock()
		w.abandon = true
		w.mu.Unlock()
		w.giveUpNow()
		w.signal()
		<-w.stopped
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dropped > droppedBefore {
		return fmt.Errorf("modelbox: %d records were not stored: %s", w.dropped-droppedBefore, w.reasonsLocked())
	}
	return nil
}

func (w *writer) reasonsLocked() string {
	parts := make([]string, 0, len(w.reasons))
	for why, n := range w.reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, why))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func (w *writer) stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := Stats{
		Logged: w.logged, Stored: w.stored, Dropped: w.dropped, Pending: w.pending,
		Batches: w.batches, Duplicates: w.duplicates, Retries: w.retries, LastError: w.lastErr,
		DropReasons: make(map[string]uint64, len(w.reasons)),
	}
	for k, v := range w.reasons {
		s.DropReasons[k] = v
	}
	if !w.lastErrAt.IsZero() {
		s.LastErrorAge = time.Since(w.lastErrAt)
	}
	return s
}
