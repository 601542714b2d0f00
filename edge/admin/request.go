package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keel-relay/keel/edge/fleet"
	"github.com/keel-relay/keel/internal/wire/ids"
)

// Bounds of the requests.
const (
	// MaxBody bounds a request body.
	MaxBody = 1 << 20
	// MaxTags bounds the tags of a daemon (and the pairs of a selector).
	MaxTags = 64
	// MaxTagKey and MaxTagValue bound a tag's key and value, in bytes.
	MaxTagKey, MaxTagValue = 63, 256
	// MaxToolName bounds a tool name.
	MaxToolName = 128
	// MaxParallel bounds the nodes a fleet command runs on at once.
	MaxParallel = fleet.MaxParallel
	// DefaultParallel is the parallelism of a fleet command that sets none.
	DefaultParallel = 16
	// DefaultTimeout is the per-node deadline of an invoke that sets none.
	DefaultTimeout = 5 * time.Minute
	// MaxTimeout bounds the per-node deadline.
	MaxTimeout = 24 * time.Hour
	// MaxVersion bounds a config version string.
	MaxVersion = 128
)

// ErrBadRequest is wrapped by every request parsing error (the answer is 400).
var ErrBadRequest = errors.New("bad request")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// ValidNodeID checks a daemon id by the edge API's rule (ids.ValidEdgeNodeID: a UUID in its
// canonical 36-character form, as AttestNode requires); the error wraps ErrBadRequest.
func ValidNodeID(id string) error {
	if err := ids.ValidEdgeNodeID(id); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}

// ValidFleetID checks a fleet command id (ids.ValidFleetID: a UUID); the error wraps
// ErrBadRequest.
func ValidFleetID(id string) error {
	if err := ids.ValidFleetID(id); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}

// validTagKey: 1-63 bytes of letters, digits and . _ - / (a label-like key).
func validTagKey(k string) error {
	if k == "" || len(k) > MaxTagKey {
		return bad("tag key %.80q must be 1-%d bytes", k, MaxTagKey)
	}
	for _, c := range []byte(k) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-', c == '/':
		default:
			return bad("tag key %q: only letters, digits and . _ - / are allowed", k)
		}
	}
	return nil
}

// validTagValue: at most 256 bytes of printable UTF-8 (no control characters).
func validTagValue(k, v string) error {
	if len(v) > MaxTagValue {
		return bad("tag %s: value longer than %d bytes", k, MaxTagValue)
	}
	if !utf8.ValidString(v) {
		return bad("tag %s: value is not UTF-8", k)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return bad("tag %s: value has a control character", k)
		}
	}
	return nil
}

// ValidTags checks a set of tags (or a selector).
func ValidTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return bad("%d tags, at most %d", len(tags), MaxTags)
	}
	for k, v := range tags {
		if err := validTagKey(k); err != nil {
			return err
		}
		if err := validTagValue(k, v); err != nil {
			return err
		}
	}
	return nil
}

// ParsePairs parses "k=v" pairs (as given on a command line, or comma-separated in one
// argument when split is true) into a tag map. A key given twice is an error.
func ParsePairs(args []string, split bool) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		parts := []string{a}
		if split {
			parts = strings.Split(a, ",")
		}
		for _, p := range parts {
			k, v, ok := strings.Cut(p, "=")
			if !ok {
				return nil, bad("%.80q is not key=value", p)
			}
			if _, dup := out[k]; dup {
				return nil, bad("key %q given twice", k)
			}
			out[k] = v
		}
	}
	if err := ValidTags(out); err != nil {
		return nil, err
	}
	return out, nil
}

// decodeStrict decodes one JSON value from body into dst: unknown fields, trailing data and
// bodies over MaxBody are errors.
func decodeStrict(body io.Reader, dst any) error {
	b, err := io.ReadAll(io.LimitReader(body, MaxBody+1))
	if err != nil {
		return fmt.Errorf("%w: reading the body: %w", ErrBadRequest, err)
	}
	if len(b) > MaxBody {
		return errTooLarge
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return bad("body is not the expected JSON: %v", err)
	}
	if dec.More() {
		return bad("body has data after its JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("body has data after its JSON value")
	}
	return nil
}

// errTooLarge is a body over MaxBody (the answer is 413).
var errTooLarge = fmt.Errorf("%w: body larger than %d bytes", ErrBadRequest, MaxBody)

// TagsRequest is the body of PUT /edge/daemons/ID/tags: the new server-managed tags.
type TagsRequest struct {
	Tags map[string]string `json:"tags"`
}

// ParseTags parses a TagsRequest body.
func ParseTags(body io.Reader) (map[string]string, error) {
	var req TagsRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if req.Tags == nil {
		return nil, bad(`"tags" is required (an empty object clears them)`)
	}
	if err := ValidTags(req.Tags); err != nil {
		return nil, err
	}
	return req.Tags, nil
}

// InvokeRequest is the body of POST /edge/invoke. Exactly one of Node and a selector (Tags
// and/or Labels, every pair of which a daemon must have) says where the tool runs.
type InvokeRequest struct {
	Node     string            `json:"node,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Tool     string            `json:"tool"`
	Args     map[string]any    `json:"args,omitempty"`
	Timeout  string            `json:"timeout,omitempty"`
	Parallel int               `json:"parallel,omitempty"`
}

// Invoke is a parsed and checked InvokeRequest.
type Invoke struct {
	Node     string
	Tags     map[string]string
	Labels   map[string]string
	Tool     string
	Args     *structpb.Struct
	Timeout  time.Duration
	Parallel int
}

// ParseInvoke parses and checks an InvokeRequest body.
func ParseInvoke(body io.Reader) (Invoke, error) {
	var req InvokeRequest
	if err := decodeStrict(body, &req); err != nil {
		return Invoke{}, err
	}
	return req.Check()
}

// Check validates the request and fills in the defaults.
func (req InvokeRequest) Check() (Invoke, error) {
	inv := Invoke{Node: req.Node, Tags: req.Tags, Labels: req.Labels, Tool: req.Tool, Timeout: DefaultTimeout, Parallel: DefaultParallel}
	selector := len(req.Tags) > 0 || len(req.Labels) > 0
	switch {
	case req.Node == "" && !selector:
		return Invoke{}, bad(`say where to run: "node" or a "tags"/"labels" selector`)
	case req.Node != "" && selector:
		return Invoke{}, bad(`"node" and a "tags"/"labels" selector exclude each other`)
	}
	if req.Node != "" {
		if err := ValidNodeID(req.Node); err != nil {
			return Invoke{}, err
		}
	}
	if err := ValidTags(req.Tags); err != nil {
		return Invoke{}, err
	}
	if err := ValidTags(req.Labels); err != nil {
		return Invoke{}, err
	}
	if err := validTool(req.Tool); err != nil {
		return Invoke{}, err
	}
	if req.Timeout != "" {
		d, err := time.ParseDuration(req.Timeout)
		if err != nil {
			return Invoke{}, bad("timeout %.40q: %v", req.Timeout, err)
		}
		if d <= 0 || d > MaxTimeout {
			return Invoke{}, bad("timeout %s must be > 0 and at most %s", d, MaxTimeout)
		}
		inv.Timeout = d
	}
	switch {
	case req.Parallel < 0 || req.Parallel > MaxParallel:
		return Invoke{}, bad("parallel %d must be between 1 and %d", req.Parallel, MaxParallel)
	case req.Parallel > 0:
		inv.Parallel = req.Parallel
	}
	if req.Args != nil {
		s, err := structpb.NewStruct(req.Args)
		if err != nil {
			return Invoke{}, bad("args: %v", err)
		}
		inv.Args = s
	}
	return inv, nil
}

func validTool(t string) error {
	if t == "" || len(t) > MaxToolName {
		return bad(`"tool" must be 1-%d bytes`, MaxToolName)
	}
	for _, c := range []byte(t) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-', c == '/', c == ':':
		default:
			return bad("tool %q: only letters, digits and . _ - / : are allowed", t)
		}
	}
	return nil
}

// ConfigRequest is the body of POST /edge/daemons/ID/config: a config delta for the daemon
// (any JSON value, passed on as its bytes) and the version it brings.
type ConfigRequest struct {
	Delta   json.RawMessage `json:"delta"`
	Version string          `json:"version"`
}

// ParseConfig parses a ConfigRequest body and returns the delta's bytes and the version.
func ParseConfig(body io.Reader) ([]byte, string, error) {
	var req ConfigRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, "", err
	}
	if len(req.Delta) == 0 || string(req.Delta) == "null" {
		return nil, "", bad(`"delta" is required`)
	}
	if req.Version == "" || len(req.Version) > MaxVersion {
		return nil, "", bad(`"version" must be 1-%d bytes`, MaxVersion)
	}
	for _, r := range req.Version {
		if r < 0x21 || r == 0x7f {
			return nil, "", bad("version %q has a space or control character", req.Version)
		}
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, req.Delta); err != nil {
		return nil, "", bad("delta: %v", err)
	}
	return compact.Bytes(), req.Version, nil
}
