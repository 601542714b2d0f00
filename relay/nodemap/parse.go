package nodemap

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"reflect"
	"slices"
	"strings"
)

// Parse parses a node map file for the relay whose node id is self. It accepts a bare object of
// entries or the same object wrapped as {"data": {...}}; {} is a map with no nodes, an
// empty file is an error (a file caught mid-write must not wipe the map in force).
// Every problem found (bad entries or ids, ids listed twice, missing fields, dangling parents,
// cycles) is reported in one error naming all the node ids involved.
func Parse(data []byte, self string) (*Map, error) {
	return ParseReader(bytes.NewReader(data), self)
}

// ParseReader is Parse reading the file from r, as a stream: memory holds the map being built,
// never the whole file. The map's Digest is that of everything r returned.
func ParseReader(r io.Reader, self string) (*Map, error) {
	h := sha256.New()
	m, err := parse(r, h, self)
	if err != nil {
		return nil, err
	}
	m.digest = hex.EncodeToString(h.Sum(nil))
	return m, nil
}

// parse decodes r, writing every byte it reads from r to h, and builds the map (without its
// digest). On success r has been read to its end.
func parse(r io.Reader, h hash.Hash, self string) (*Map, error) {
	if !validID(self) {
		return nil, fmt.Errorf("node map: invalid self node id %q", self)
	}
	src := &source{r: r, h: h}
	dec := json.NewDecoder(bufio.NewReaderSize(src, 64<<10))
	dec.UseNumber() // numbers are skipped, never converted
	b := newBuilder(self)
	if err := b.decode(dec); err != nil {
		if src.err != nil {
			return nil, fmt.Errorf("node map: read: %w", src.err)
		}
		return nil, err
	}
	return b.build()
}

// source reads the file for the decoder, hashes what it reads, and remembers a read error (so
// that it is not reported as invalid JSON).
type source struct {
	r   io.Reader
	h   hash.Hash
	err error
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

// builder collects the entries of a map as they are decoded.
type builder struct {
	self    string
	text    text
	nodes   []node
	parents []string          // distinct policy servers, in order of appearance
	parent  map[string]uint32 // index in parents
	broken  map[string]int    // valid ids of entries that did not parse, with how often they appear
	p       problems
}

func newBuilder(self string) *builder {
	return &builder{self: self, parent: map[string]uint32{}, broken: map[string]int{}}
}

// reset forgets every entry added so far.
func (b *builder) reset() { *b = *newBuilder(b.self) }

// errEmpty is the error for a file with nothing but whitespace.
var errEmpty = errors.New("node map: the file is empty (a map with no nodes is {})")

// decode reads the top-level object and adds its entries, unwrapping {"data": {...}}. The entries
// are decoded one at a time; the shape is decided on the way (see dataMember).
func (b *builder) decode(dec *json.Decoder) error {
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		// Most likely a file caught while being rewritten, or truncated by a full disk.
		return errEmpty
	}
	if err != nil {
		return invalidJSON(err)
	}
	switch tok {
	case json.Delim('{'):
	case nil:
		return errors.New("node map: top level is null, want an object")
	default:
		// As json.Unmarshal into a map of entries said, before the file was streamed.
		err := &json.UnmarshalTypeError{Value: kindOf(tok), Type: reflect.TypeFor[map[string]json.RawMessage]()}
		return fmt.Errorf("node map: invalid JSON: %w", err)
	}
	for first := true; dec.More(); first = false {
		id, err := memberName(dec)
		if err != nil {
			return err
		}
		if first && id == "data" {
			err = b.dataMember(dec)
		} else {
			err = b.member(dec, id)
		}
		if err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return invalidJSON(err)
	}
	switch _, err := dec.Token(); {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return errors.New("node map: invalid JSON: data after the top-level object")
	default:
		return invalidJSON(err)
	}
}

// memberName reads the name of the next member of an object.
func memberName(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", invalidJSON(err)
	}
	name, ok := tok.(string)
	if !ok { // the decoder allows only strings here
		return "", fmt.Errorf("node map: invalid JSON: object member name is a %s", kindOf(tok))
	}
	return name, nil
}

// member decodes the value of the entry id and adds it.
func (b *builder) member(dec *json.Decoder, id string) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return invalidJSON(err)
	}
	return b.add(id, raw)
}

// dataMember handles a first member named "data". The file is {"data": {...}} (the wrapped
// shape) when that is its only member, its value is an object, and that object has no
// "policy-server" member whose value is a string; otherwise "data" is the id of a node in the
// bare shape. Which one is known only at the end of the value (or of the file), so the members
// of the object are added as entries, and what the object means as one entry of its own (its
// members that can be entry fields) is kept on the side. When it turns out to be an entry, the
// builder starts again from it.
func (b *builder) dataMember(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return invalidJSON(err)
	}
	if tok != json.Delim('{') {
		// Not an object: the bare shape, with an entry "data" that is not a node object.
		if err := skipRest(dec, tok); err != nil {
			return err
		}
		return b.add("data", nil)
	}
	var fields []byte // the members of the object that matter to it as an entry, as JSON
	psString := false // its last "policy-server" member is a string
	for dec.More() {
		name, err := memberName(dec)
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return invalidJSON(err)
		}
		if name == "policy-server" {
			psString = isString(raw)
		}
		fields = appendField(fields, name, raw)
		if err := b.add(name, raw); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return invalidJSON(err)
	}
	if !dec.More() && !psString {
		return nil // wrapped: its members were the entries
	}
	b.reset()
	return b.add("data", append(append([]byte{'{'}, fields...), '}'))
}

// appendField appends the member name: raw to fields (a comma-separated list of members) if it
// can change what decoding the object as an entry gives, that is if its name matches one of an
// entry's fields as encoding/json matches them (strings.EqualFold); other members are ignored
// whatever their value. The value of an object member is kept as {}: an object there is an
// error (hostname, policy-server) or ignored (key-hash) whatever it holds.
func appendField(fields []byte, name string, raw json.RawMessage) []byte {
	if !strings.EqualFold(name, "hostname") && !strings.EqualFold(name, "policy-server") && !strings.EqualFold(name, "key-hash") {
		return fields
	}
	if len(fields) > 0 {
		fields = append(fields, ',')
	}
	key, _ := json.Marshal(name) // a string always marshals
	fields = append(append(fields, key...), ':')
	if isObject(raw) {
		return append(fields, "{}"...)
	}
	return append(fields, raw...)
}

// skipRest consumes the rest of a value whose first token was tok.
func skipRest(dec *json.Decoder, tok json.Token) error {
	depth := 0
	for {
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
		var err error
		if tok, err = dec.Token(); err != nil {
			return invalidJSON(err)
		}
	}
}

// invalidJSON wraps a decoding error.
func invalidJSON(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = errors.New("unexpected end of JSON input")
	}
	return fmt.Errorf("node map: invalid JSON: %w", err)
}

// kindOf names the JSON kind of a token that starts a value, as json.UnmarshalTypeError does.
func kindOf(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		if tok == json.Delim('[') {
			return "array"
		}
		return "object"
	case string:
		return "string"
	case json.Number, float64:
		return "number"
	case bool:
		return "bool"
	}
	return "null"
}

func isObject(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '{'
}

func isString(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '"'
}

// entry is one raw entry of the file. KeyHash is decoded leniently: a key-hash that is not a
// string is not a load error, the node just has no key.
type entry struct {
	Hostname     *string         `json:"hostname"`
	PolicyServer *string         `json:"policy-server"`
	KeyHash      json.RawMessage `json:"key-hash"`
}

// add checks the entry id (its value v, nil when it is not an object) and adds it, or records
// its problems.
func (b *builder) add(id string, v json.RawMessage) error {
	if !validID(id) {
		b.p.add(catBadID, fmt.Sprintf("%q", id))
		return nil
	}
	var e entry
	if !isObject(v) || json.Unmarshal(v, &e) != nil {
		b.p.add(catNotObject, id)
		b.broken[id]++
		return nil
	}
	ok := true
	if e.Hostname == nil || *e.Hostname == "" {
		b.p.add(catNoHostname, id)
		ok = false
	}
	switch {
	case e.PolicyServer == nil || *e.PolicyServer == "":
		b.p.add(catNoParent, id)
		ok = false
	case !validID(*e.PolicyServer):
		b.p.add(catBadParent, fmt.Sprintf("%s -> %q", id, *e.PolicyServer))
		ok = false
	}
	if !ok {
		b.broken[id]++
		return nil
	}
	var kh string
	if json.Unmarshal(e.KeyHash, &kh) != nil {
		kh = ""
	}
	ps := *e.PolicyServer
	pi, seen := b.parent[ps]
	if !seen {
		pi = uint32(len(b.parents))
		b.parents = append(b.parents, ps)
		b.parent[ps] = pi
	}
	off, err := b.text.add(id, *e.Hostname, kh)
	if err != nil {
		return err
	}
	b.nodes = append(b.nodes, node{off: off, idLen: uint8(len(id)), hostLen: uint32(len(*e.Hostname)),
		keyLen: uint32(len(kh)), parent: pi})
	return nil
}

// build sorts the entries, checks the map as a whole (ids listed twice, dangling parents,
// cycles) and computes the routes.
func (b *builder) build() (*Map, error) {
	b.text.seal()
	m := &Map{self: b.self, text: b.text, nodes: b.nodes, parents: b.parents}
	slices.SortFunc(m.nodes, func(x, y node) int {
		return strings.Compare(m.text.get(x.off, uint32(x.idLen)), m.text.get(y.off, uint32(y.idLen)))
	})
	for i := 1; i < len(m.nodes); i++ {
		if id := m.id(int32(i)); id == m.id(int32(i-1)) {
			b.p.add(catDuplicate, id)
		}
	}
	for id, count := range b.broken {
		if count > 1 || m.find(id) >= 0 {
			b.p.add(catDuplicate, id)
		}
	}
	// The node of each policy server. Dangling parents are compared with every id in the file,
	// so that a child of an entry that is itself broken is not reported twice.
	parent := make([]int32, len(m.parents))
	for i, ps := range m.parents {
		parent[i] = m.find(ps)
	}
	for i := range m.nodes {
		ps := m.parents[m.nodes[i].parent]
		if parent[m.nodes[i].parent] < 0 && b.broken[ps] == 0 && ps != m.self {
			if id := m.id(int32(i)); id != m.self {
				b.p.add(catDangling, fmt.Sprintf("%s -> %q", id, ps))
			}
		}
	}
	m.resolve(parent, &b.p)
	if err := b.p.err(); err != nil {
		return nil, err
	}
	m.finish(parent)
	return m, nil
}
