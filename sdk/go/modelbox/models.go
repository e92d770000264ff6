package modelbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	v1 "modelbox.dev/sdk/go/modelboxv1"
)

// Model is a logged model: an entity of its own with a version per name, its files and labels.
type Model struct {
	ID           string
	Name         string
	Version      int
	Framework    string
	RunID        string
	ExperimentID string
	Files        []ModelFile
	Metadata     map[string]any
	Labels       map[string]string
	Datasets     []string
	Status       string // draft | final
	CreatedAt    time.Time
}

// ModelFile is one file of a model; Path is what the server's Download takes.
type ModelFile struct {
	Name   string // relative name inside the model's folder
	Path   string
	Bytes  int64 // -1: the file was missing when the model was logged
	SHA256 string
}

// ModelsQuery selects models; the zero value selects every model.
type ModelsQuery struct {
	Name   string
	Labels map[string]string // every label must match
	RunID  string
}

// Models lists models.
func (c *Client) Models(ctx context.Context, q ModelsQuery) ([]Model, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	req := &v1.ListModelsRequest{Labels: q.Labels}
	if q.Name != "" {
		req.Name = &q.Name
	}
	if q.RunID != "" {
		req.RunId = &q.RunID
	}
	resp, err := c.api.ListModels(ctx, req)
	if err != nil {
		return nil, c.wrap(err)
	}
	out := make([]Model, 0, len(resp.Models))
	for _, m := range resp.Models {
		out = append(out, modelOf(m))
	}
	return out, nil
}

// Model resolves a model reference on the server and returns the model. The reference is
// passed through as given: a model id or a unique id prefix (at least 4 characters) today;
// NAME@VERSION, NAME@latest and NAME@ALIAS wherever the server resolves them, with no change
// here. Unknown references fail with ErrNotFound (or ErrInvalidArgument for a form the server
// does not read).
func (c *Client) Model(ctx context.Context, ref string) (Model, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.api.GetModel(ctx, &v1.GetModelRequest{ModelId: ref})
	if err != nil {
		return Model{}, c.wrap(err)
	}
	return modelOf(resp), nil
}

func modelOf(m *v1.ModelInfo) Model {
	out := Model{
		ID: m.Id, Name: m.Name, Version: int(m.Version), Framework: m.Framework, RunID: m.GetRunId(),
		ExperimentID: m.GetExperimentId(), Labels: m.Labels, Datasets: m.Datasets, Status: m.Status,
		CreatedAt: fromSeconds(m.CreatedAt),
	}
	if meta, ok := decodeJSON(m.MetadataJson).(map[string]any); ok {
		out.Metadata = meta
	}
	for _, f := range m.Files {
		out.Files = append(out.Files, ModelFile{Name: f.Name, Path: f.Path, Bytes: optBytes(f.Bytes), SHA256: f.GetSha256()})
	}
	return out
}

// DownloadedModel is a model whose files were written to Dir.
type DownloadedModel struct {
	Model Model
	Dir   string // <dest>/<name>-v<version>, as the Python SDK names it
	Files []DownloadedFile
}

// DownloadedFile is one written file, with the sha256 of the bytes received.
type DownloadedFile struct {
	Name   string
	Path   string
	Bytes  int64
	SHA256 string
}

// DownloadModel resolves ref (see Model) and writes the model's files into
// <destDir>/<name>-v<version>/. Each file is streamed to a temporary name, checked against the
// size and sha256 the server recorded, then renamed: a failed download leaves no partial file.
func (c *Client) DownloadModel(ctx context.Context, ref, destDir string) (DownloadedModel, error) {
	model, err := c.Model(ctx, ref)
	if err != nil {
		return DownloadedModel{}, err
	}
	dir := filepath.Join(destDir, safeFolderName(fmt.Sprintf("%s-v%d", model.Name, model.Version)))
	out := DownloadedModel{Model: model, Dir: dir}
	for _, f := range model.Files {
		if f.Bytes < 0 || f.Path == "" {
			return out, &Error{Code: codes.NotFound, Target: c.target,
				Message: fmt.Sprintf("model %s file %q was never stored (its source was missing when logged)", model.ID, f.Name)}
		}
		dest, err := insideDir(dir, f.Name)
		if err != nil {
			return out, err
		}
		written, err := c.downloadTo(ctx, f, dest)
		if err != nil {
			return out, err
		}
		out.Files = append(out.Files, written)
	}
	return out, nil
}

func (c *Client) downloadTo(ctx context.Context, f ModelFile, dest string) (DownloadedFile, error) {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return DownloadedFile{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".part-*")
	if err != nil {
		return DownloadedFile{}, err
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, sum, err := c.WriteModelFile(ctx, f, tmp)
	if err != nil {
		return DownloadedFile{}, err
	}
	if err := tmp.Close(); err != nil {
		return DownloadedFile{}, err
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return DownloadedFile{}, err
	}
	keep = true
	return DownloadedFile{Name: f.Name, Path: dest, Bytes: n, SHA256: sum}, nil
}

// WriteModelFile streams one model file to w and checks it against the size and sha256 the
// server recorded (ErrDataLoss when they differ: w then holds bytes that must not be used).
func (c *Client) WriteModelFile(ctx context.Context, f ModelFile, w io.Writer) (int64, string, error) {
	n, sum, err := c.Download(ctx, f.Path, w)
	if err != nil {
		return n, sum, err
	}
	if (f.Bytes >= 0 && n != f.Bytes) || (f.SHA256 != "" && !strings.EqualFold(sum, f.SHA256)) {
		return n, sum, &Error{Code: codes.DataLoss, Target: c.target,
			Message: fmt.Sprintf("%s: received %d bytes with sha256 %s; the server recorded %d bytes with sha256 %s", f.Name, n, sum, f.Bytes, f.SHA256)}
	}
	return n, sum, nil
}

// Download streams a stored file (a ModelFile's or an Artifact's Path) to w; it returns the
// bytes written and their sha256. It has no deadline of its own: bound it with ctx.
func (c *Client) Download(ctx context.Context, path string, w io.Writer) (int64, string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.api.Download(ctx, &v1.DownloadRequest{Path: path})
	if err != nil {
		return 0, "", c.wrap(err)
	}
	digest := sha256.New()
	var n int64
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, hexSum(digest), nil
		}
		if err != nil {
			return n, "", c.wrap(err)
		}
		digest.Write(chunk.Data)
		written, err := w.Write(chunk.Data)
		n += int64(written)
		if err != nil {
			return n, "", err
		}
	}
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// insideDir joins a relative file name to dir, refusing names that would leave it.
func insideDir(dir, name string) (string, error) {
	clean := filepath.Clean(filepath.FromSlash(name))
	if name == "" || filepath.IsAbs(clean) || clean == "." || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", &Error{Code: codes.InvalidArgument, Message: fmt.Sprintf("file name %q would leave the download folder", name)}
	}
	return filepath.Join(dir, clean), nil
}

// safeFolderName keeps a model name usable as one folder name.
func safeFolderName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, name)
	if strings.Trim(name, ".") == "" {
		return "model"
	}
	return name
}
