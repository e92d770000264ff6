package modelbox

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Limits the server enforces (modelbox_autolog/proto/convert.py); checked here so one bad
// name is refused alone instead of making the server refuse a whole batch.
const (
	maxNameChars = 4096
	maxTextChars = 16 << 20
)

var ids = struct {
	sync.Mutex
	*rand.Rand
}{Rand: rand.New(rand.NewSource(seed()))}

func seed() int64 {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		return time.Now().UnixNano()
	}
	return int64(binary.LittleEndian.Uint64(b[:]))
}

// newID is 32 hex characters (128 random bits): run, event and batch ids, as in the Python SDK.
func newID() string {
	var b [16]byte
	ids.Lock()
	ids.Read(b[:]) //nolint:errcheck // math/rand's Read never fails
	ids.Unlock()
	return hex.EncodeToString(b[:])
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}

func fromSeconds(s float64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// validName: what the server accepts as a key, name or tag value.
func validName(s string, empty bool) bool {
	if (s == "" && !empty) || len(s) > maxNameChars || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsRune(s, 0)
}

// jsonText is a value as JSON; a value encoding/json refuses (a channel, NaN) becomes its %v
// text, as the Python SDK stores the repr of what is not JSON.
func jsonText(v any) string {
	switch x := v.(type) {
	case float64:
		return floatJSON(x)
	case float32:
		return floatJSON(float64(x))
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprintf("%v", v))
	}
	return string(b)
}

// floatJSON writes NaN and the infinities as Python's json module does, so the Python reader
// gets the same float back.
func floatJSON(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	b, _ := json.Marshal(f)
	return string(b)
}

// attrsJSON is a JSON object of attributes ("" for none); values encoding/json refuses are kept
// as their %v text.
func attrsJSON(attrs map[string]any) string {
	if len(attrs) == 0 {
		return ""
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	sb.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		sb.Write(kb)
		sb.WriteByte(':')
		sb.WriteString(jsonText(attrs[k]))
	}
	sb.WriteByte('}')
	return sb.String()
}

// flatten turns nested maps into dotted keys: {"optimizer": {"name": "adam"}} -> optimizer.name.
func flatten(prefix string, in map[string]any, out map[string]any) {
	for k, v := range in {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if nested, ok := v.(map[string]any); ok && len(nested) > 0 {
			flatten(key, nested, out)
			continue
		}
		out[key] = v
	}
}
