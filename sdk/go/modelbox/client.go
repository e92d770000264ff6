// Package modelbox is the Go client of a modelbox server (the modelbox.v1 gRPC API).
//
// A Client logs runs (metrics, params, events) in batches from a background goroutine, with
// the same at-most-once batch ids as the Python SDK, and reads runs, metrics and models back;
// it resolves a model reference, streams the model's files to a folder or an io.Writer, and
// follows the change feed from a sequence number.
//
//	client, err := modelbox.Dial("grpc://127.0.0.1:50051", modelbox.Options{})
//	if err != nil { ... }
//	defer client.Close()
//	run, _ := client.StartRun(modelbox.RunOptions{Experiment: "ranker"})
//	for step := int64(0); step < 1000; step++ {
//		run.LogMetric("loss", 1/float64(step+1), step)
//	}
//	err = run.End(modelbox.Finished) // sends what is pending and marks the run finished
package modelbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	v1 "modelbox.dev/sdk/go/modelboxv1"
)

// DefaultPort is the port of a grpc:// URI that names none (the Python SDK's default too).
const DefaultPort = 50051

const maxMessageBytes = 256 << 20

// Options tune a Client; the zero value is a good default.
type Options struct {
	// Token is sent as "authorization: Bearer <token>" on every call. Empty: MODELBOX_TOKEN.
	Token string
	// CAFile names PEM root certificates for grpcs:// URIs. Empty: MODELBOX_TLS_CA, else the
	// system's roots.
	CAFile string
	// BatchPoints is the most metric points sent in one WriteBatch call (default 10,000; at
	// most 1,000,000).
	BatchPoints int
	// FlushInterval: records wait at most this long before they are sent (default 250 ms).
	FlushInterval time.Duration
	// MaxPending bounds the records kept in memory while the server is slow or away (default
	// 2,000,000). Records logged past it are dropped and counted in Stats, never blocked on.
	MaxPending int
	// CallTimeout bounds each read call (default 30 s); WriteTimeout each WriteBatch attempt
	// (default 60 s).
	CallTimeout, WriteTimeout time.Duration
	// CloseTimeout bounds how long Close and Run.End wait for pending records (default 30 s).
	CloseTimeout time.Duration
	// DialOptions are appended to the client's own (interceptors, a custom dialer, ...).
	DialOptions []grpc.DialOption
	// Logf receives the client's warnings, once per cause (default: the standard logger).
	Logf func(format string, args ...any)
}

func (o Options) withDefaults() Options {
	if o.Token == "" {
		o.Token = os.Getenv("MODELBOX_TOKEN")
	}
	if o.CAFile == "" {
		o.CAFile = os.Getenv("MODELBOX_TLS_CA")
	}
	if o.BatchPoints <= 0 {
		o.BatchPoints = 10_000
	} else if o.BatchPoints > 1_000_000 {
		o.BatchPoints = 1_000_000 // about 30 MB per request: far below the message size limit
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 250 * time.Millisecond
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 2_000_000
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 60 * time.Second
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 30 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(format string, args ...any) { log.Printf("modelbox: "+format, args...) }
	}
	return o
}

// Client talks to one modelbox server. It is safe for concurrent use.
type Client struct {
	conn   *grpc.ClientConn
	api    v1.ModelBoxClient
	target string
	opts   Options

	mu        sync.Mutex
	writer    *writer // started by the first StartRun
	closed    bool
	closeOnce sync.Once
	closeErr  error

	warned sync.Map // causes already reported through Logf
}

// ParseURI turns grpc://HOST[:PORT] or grpcs://HOST[:PORT] into a dial target and whether it
// uses TLS.
func ParseURI(uri string) (target string, useTLS bool, err error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", false, fmt.Errorf("modelbox: %q is not a server URI: %v", uri, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "grpc" && scheme != "grpcs") || u.Hostname() == "" {
		return "", false, fmt.Errorf("modelbox: %q is not a server URI; expected grpc://HOST:PORT or grpcs://HOST:PORT", uri)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false, fmt.Errorf("modelbox: %q: a server URI has no user, path or query; expected grpc://HOST:PORT", uri)
	}
	port := DefaultPort
	if p := u.Port(); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return "", false, fmt.Errorf("modelbox: %q: port %q is not a number in 1-65535", uri, p)
		}
	}
	return net.JoinHostPort(u.Hostname(), strconv.Itoa(port)), scheme == "grpcs", nil
}

// Dial opens a lazy connection to a modelbox server: it never waits for the server, so a
// training job starts even while the server restarts (records wait in memory meanwhile).
func Dial(uri string, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	target, useTLS, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	dial := []grpc.DialOption{
		grpc.WithDefaultCallOptions(
			grpc.ForceCodec(protoCodec{}),
			grpc.MaxCallRecvMsgSize(maxMessageBytes),
			grpc.MaxCallSendMsgSize(maxMessageBytes),
		),
		// A restarted server is found again within a second, not after gRPC's 2-minute backoff.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if useTLS {
		config := &tls.Config{MinVersion: tls.VersionTLS12}
		if opts.CAFile != "" {
			pem, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("modelbox: cannot read the CA file: %w", err)
			}
			config.RootCAs = x509.NewCertPool()
			if !config.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("modelbox: %s holds no PEM certificate", opts.CAFile)
			}
		}
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(config)))
	} else {
		dial = append(dial, grpc.WithInsecure())
	}
	if opts.Token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearerToken{header: "Bearer " + opts.Token}))
	}
	dial = append(dial, opts.DialOptions...)
	conn, err := grpc.Dial(target, dial...)
	if err != nil {
		return nil, fmt.Errorf("modelbox: cannot open a channel to %s: %w", target, err)
	}
	return &Client{conn: conn, api: v1.NewModelBoxClient(conn), target: target, opts: opts}, nil
}

// Target is the host:port the client talks to.
func (c *Client) Target() string { return c.target }

// API is the generated modelbox.v1 stub on the client's connection (token and codec included),
// for calls this package does not wrap.
func (c *Client) API() v1.ModelBoxClient { return c.api }

// Close sends what is pending (waiting at most Options.CloseTimeout) and closes the connection.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.CloseTimeout)
	defer cancel()
	return c.Shutdown(ctx)
}

// Shutdown is Close with the caller's deadline: records still pending when ctx ends are
// dropped and counted in Stats, and the error says how many.
func (c *Client) Shutdown(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		w := c.writer
		c.mu.Unlock()
		if w != nil {
			c.closeErr = w.close(ctx)
		}
		if err := c.conn.Close(); err != nil && c.closeErr == nil {
			c.closeErr = err
		}
	})
	return c.closeErr
}

// Stats counts what the client's logger did so far.
func (c *Client) Stats() Stats {
	if w := c.existingWriter(); w != nil {
		return w.stats()
	}
	return Stats{}
}

func (c *Client) existingWriter() *writer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writer
}

// logger is the client's writer, started on first use; nil once the client is closed.
func (c *Client) logger() *writer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writer == nil && !c.closed {
		c.writer = newWriter(c)
	}
	return c.writer
}

func (c *Client) warnOnce(cause string, format string, args ...any) {
	if _, seen := c.warned.LoadOrStore(cause, true); !seen {
		c.opts.Logf(format, args...)
	}
}

func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.opts.CallTimeout)
}

// bearerToken sends the server's token as call metadata. Over a plaintext channel too: the
// server decides what it accepts (a loopback or an internal network, as for the Python SDK).
type bearerToken struct{ header string }

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": b.header}, nil
}

func (b bearerToken) RequireTransportSecurity() bool { return false }
