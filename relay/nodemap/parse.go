package nodemap

import (
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
	"strconv"
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

// ParseReader is Parse reading the file from r, as a stream: memory holds the map being built
// and the entry being read, never the whole file. The map's Digest is that of everything r
// returned.
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
//
// The file is read in one pass. The structure of the top-level object (and of the "data"
// wrapper) is followed here; each entry's value is cut out whole and decoded on its own: an
// object of plain strings (every entry Rudder writes) by flatEntry, anything else by
// encoding/json, which also checks it is valid JSON. The outcome is the same as decoding the
// whole file with encoding/json (see reference_test.go), except that an id listed twice is
// refused.
func parse(r io.Reader, h hash.Hash, self string) (*Map, error) {
	if !validID(self) {
		return nil, fmt.Errorf("node map: invalid self node id %q", self)
	}
	src := &source{r: r, h: h}
	b := newBuilder(self)
	if err := b.decode(&scanner{r: src, buf: make([]byte, 0, 64<<10)}); err != nil {
		if src.err != nil {
			return nil, fmt.Errorf("node map: read: %w", src.err)
		}
		return nil, err
	}
	return b.build()
}

// source reads the file for the scanner, hashes what it reads, and remembers a read error (so
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

// decode reads the top-level object and adds its entries, unwrapping {"data": {...}}.
func (b *builder) decode(s *scanner) error {
	c, ok := s.skipSpace()
	if !ok {
		// Most likely a file caught while being rewritten, or truncated by a full disk.
		return errEmpty
	}
	if c != '{' {
		return topLevelError(c)
	}
	s.pos++
	first := true
	err := s.members(func(name []byte) error {
		if first && string(name) == "data" {
			first = false
			return b.dataMember(s)
		}
		first = false
		v, err := s.value()
		if err != nil {
			return err
		}
		return b.add(name, v)
	})
	if err != nil {
		return err
	}
	if c, ok := s.skipSpace(); ok {
		return syntaxError(c, "after top-level value")
	}
	return nil
}

// topLevelError describes a file whose top level is not an object, as json.Unmarshal into a
// map of entries did before the file was streamed.
func topLevelError(c byte) error {
	var kind string
	switch {
	case c == 'n':
		return errors.New("node map: top level is null, want an object")
	case c == '[':
		kind = "array"
	case c == '"':
		kind = "string"
	case c == '-' || c >= '0' && c <= '9':
		kind = "number"
	case c == 't' || c == 'f':
		kind = "bool"
	default:
		return syntaxError(c, "looking for beginning of value")
	}
	err := &json.UnmarshalTypeError{Value: kind, Type: reflect.TypeFor[map[string]json.RawMessage]()}
	return fmt.Errorf("node map: invalid JSON: %w", err)
}

// dataMember handles a first member named "data". The file is {"data": {...}} (the wrapped
// shape) when that is its only member, its value is an object, and that object has no
// "policy-server" member whose value is a string; otherwise "data" is the id of a node in the
// bare shape. Which one is known only at the end of the value, so the members of the object
// are added as entries, and what the object means as one entry of its own (its members that
// can be entry fields) is kept on the side. When it turns out to be an entry, the builder
// starts again from it.
func (b *builder) dataMember(s *scanner) error {
	c, ok := s.skipSpace()
	if !ok {
		return errEOF
	}
	if c != '{' {
		v, err := s.value()
		if err != nil {
			return err
		}
		return b.add([]byte("data"), v)
	}
	s.pos++
	var fields []byte // the members of the object that matter to it as an entry, as JSON
	psString := false // its last "policy-server" member is a string
	err := s.members(func(name []byte) error {
		v, err := s.value()
		if err != nil {
			return err
		}
		if string(name) == "policy-server" {
			psString = isString(v)
		}
		fields = appendField(fields, name, v)
		return b.add(name, v)
	})
	if err != nil {
		return err
	}
	if c, ok := s.skipSpace(); (!ok || c != ',') && !psString {
		return nil // wrapped: its members were the entries
	}
	b.reset()
	return b.add([]byte("data"), append(append([]byte{'{'}, fields...), '}'))
}

// appendField appends the member name: raw to fields (a comma-separated list of members) if it
// can change what decoding the object as an entry gives, that is if its name matches one of an
// entry's fields as encoding/json matches them (strings.EqualFold); other members are ignored
// whatever their value. The value of an object member is kept as {}: an object there is an
// error (hostname, policy-server) or ignored (key-hash) whatever it holds.
func appendField(fields, name, raw []byte) []byte {
	if !isField(name) {
		return fields
	}
	if len(fields) > 0 {
		fields = append(fields, ',')
	}
	key, _ := json.Marshal(string(name)) // a string always marshals
	fields = append(append(fields, key...), ':')
	if isObject(raw) {
		return append(fields, "{}"...)
	}
	return append(fields, raw...)
}

// Field names of an entry.
const (
	fieldHostname     = "hostname"
	fieldPolicyServer = "policy-server"
	fieldKeyHash      = "key-hash"
)

// isField reports whether encoding/json decodes a member called name into a field of entry.
func isField(name []byte) bool {
	return bytes.EqualFold(name, []byte(fieldHostname)) || bytes.EqualFold(name, []byte(fieldPolicyServer)) ||
		bytes.EqualFold(name, []byte(fieldKeyHash))
}

func isObject(v []byte) bool { return len(v) > 0 && v[0] == '{' }

func isString(v []byte) bool { return len(v) > 0 && v[0] == '"' }

// entry is one raw entry of the file, as encoding/json decodes it. KeyHash is decoded
// leniently: a key-hash that is not a string is not a load error, the node just has no key.
type entry struct {
	Hostname     *string         `json:"hostname"`
	PolicyServer *string         `json:"policy-server"`
	KeyHash      json.RawMessage `json:"key-hash"`
}

// fields are the fields of one entry; nil when absent (or null).
type fields struct {
	hostname, policyServer, keyHash []byte
}

// decodeEntry decodes v, the value of an entry (valid JSON or not: it is checked here).
// object is false when v is not a valid node object; err is set when v is not JSON.
func decodeEntry(v []byte) (f fields, object bool, err error) {
	if isObject(v) {
		if f, ok := flatEntry(v); ok {
			return f, true, nil
		}
	}
	var e entry
	err = json.Unmarshal(v, &e)
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return f, false, fmt.Errorf("node map: invalid JSON: %w", err)
	}
	if !isObject(v) || err != nil {
		return f, false, nil
	}
	if e.Hostname != nil {
		f.hostname = []byte(*e.Hostname)
	}
	if e.PolicyServer != nil {
		f.policyServer = []byte(*e.PolicyServer)
	}
	var kh string
	if json.Unmarshal(e.KeyHash, &kh) == nil {
		f.keyHash = []byte(kh)
	}
	return f, true, nil
}

// flatEntry decodes v, an object, when all its members are plain strings (printable ASCII
// without a backslash), as encoding/json would. ok is false for anything else.
func flatEntry(v []byte) (f fields, ok bool) {
	i := 1 // after the opening brace
	space := func() {
		for i < len(v) && isSpace(v[i]) {
			i++
		}
	}
	plain := func() ([]byte, bool) {
		if i >= len(v) || v[i] != '"' {
			return nil, false
		}
		start := i + 1
		for i = start; i < len(v) && v[i] != '"'; i++ {
			if c := v[i]; c < 0x20 || c > 0x7e || c == '\\' {
				return nil, false
			}
		}
		if i == len(v) {
			return nil, false
		}
		i++
		return v[start : i-1], true
	}
	space()
	if i < len(v) && v[i] == '}' {
		return f, i+1 == len(v)
	}
	for {
		space()
		name, ok := plain()
		if !ok {
			return f, false
		}
		space()
		if i >= len(v) || v[i] != ':' {
			return f, false
		}
		i++
		space()
		val, ok := plain()
		if !ok {
			return f, false
		}
		switch {
		case bytes.EqualFold(name, []byte(fieldHostname)):
			f.hostname = val
		case bytes.EqualFold(name, []byte(fieldPolicyServer)):
			f.policyServer = val
		case bytes.EqualFold(name, []byte(fieldKeyHash)):
			f.keyHash = val
		}
		space()
		switch {
		case i < len(v) && v[i] == ',':
			i++
		case i < len(v) && v[i] == '}':
			return f, i+1 == len(v)
		default:
			return f, false
		}
	}
}

// add checks the entry id whose value is v and adds it, or records its problems. It fails only
// when v is not valid JSON.
func (b *builder) add(id, v []byte) error {
	f, object, err := decodeEntry(v)
	switch {
	case err != nil:
		return err
	case !validID(id):
		b.p.add(catBadID, strconv.Quote(string(id)))
		return nil
	case !object:
		b.p.add(catNotObject, string(id))
		b.broken[string(id)]++
		return nil
	}
	ok := true
	if len(f.hostname) == 0 {
		b.p.add(catNoHostname, string(id))
		ok = false
	}
	switch {
	case len(f.policyServer) == 0:
		b.p.add(catNoParent, string(id))
		ok = false
	case !validID(f.policyServer):
		b.p.add(catBadParent, fmt.Sprintf("%s -> %q", id, f.policyServer))
		ok = false
	}
	if !ok {
		b.broken[string(id)]++
		return nil
	}
	pi, seen := b.parent[string(f.policyServer)]
	if !seen {
		ps := string(f.policyServer)
		pi = uint32(len(b.parents))
		b.parents = append(b.parents, ps)
		b.parent[ps] = pi
	}
	off, err := b.text.add(id, f.hostname, f.keyHash)
	if err != nil {
		return err
	}
	b.nodes = append(b.nodes, node{off: off, idLen: uint8(len(id)), hostLen: uint32(len(f.hostname)),
		keyLen: uint32(len(f.keyHash)), parent: pi})
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

// scanner follows the structure of the file as it is read: buf[pos:] is read and not consumed.
type scanner struct {
	r    io.Reader
	buf  []byte
	pos  int
	done bool   // r returned an error (io.EOF included)
	name []byte // the last member name, decoded
}

// errEOF is the error for a file that ends inside a value.
var errEOF = errors.New("node map: invalid JSON: unexpected end of JSON input")

// minRead is the least room the scanner reads into.
const minRead = 16 << 10

// more makes at least n bytes available from pos, reading as needed, and reports whether it
// could. It may move the buffer: slices of it are invalid afterwards.
func (s *scanner) more(n int) bool {
	for len(s.buf)-s.pos < n {
		if s.done {
			return false
		}
		if s.pos > 0 {
			s.buf = s.buf[:copy(s.buf, s.buf[s.pos:])]
			s.pos = 0
		}
		if cap(s.buf)-len(s.buf) < minRead {
			s.buf = slices.Grow(s.buf, max(cap(s.buf), minRead))
		}
		k, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+k]
		if err != nil {
			s.done = true
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace consumes whitespace and returns the next byte, not consumed; ok is false at the
// end of the file.
func (s *scanner) skipSpace() (c byte, ok bool) {
	for s.more(1) {
		if c = s.buf[s.pos]; !isSpace(c) {
			return c, true
		}
		s.pos++
	}
	return 0, false
}

// members reads the members of an object whose opening brace was consumed, up to and including
// its closing brace. For each, it calls fn with the member's name, decoded (valid until the
// next name), and fn must consume its value.
func (s *scanner) members(fn func(name []byte) error) error {
	c, ok := s.skipSpace()
	if !ok {
		return errEOF
	}
	if c == '}' {
		s.pos++
		return nil
	}
	for {
		if c, ok = s.skipSpace(); !ok {
			return errEOF
		}
		if c != '"' {
			return syntaxError(c, "looking for beginning of object key string")
		}
		n, err := s.stringLen(0)
		if err != nil {
			return err
		}
		if s.name, err = decodeName(s.name[:0], s.buf[s.pos:s.pos+n]); err != nil {
			return err
		}
		s.pos += n
		if c, ok = s.skipSpace(); !ok {
			return errEOF
		}
		if c != ':' {
			return syntaxError(c, "after object key")
		}
		s.pos++
		if err := fn(s.name); err != nil {
			return err
		}
		if c, ok = s.skipSpace(); !ok {
			return errEOF
		}
		switch c {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return syntaxError(c, "after object key:value pair")
		}
	}
}

// decodeName appends the decoded JSON string q (quotes included) to dst.
func decodeName(dst, q []byte) ([]byte, error) {
	plain := true
	for _, c := range q[1 : len(q)-1] {
		if c < 0x20 || c > 0x7e || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		return append(dst, q[1:len(q)-1]...), nil
	}
	var name string
	if err := json.Unmarshal(q, &name); err != nil {
		return dst, fmt.Errorf("node map: invalid JSON: %w", err)
	}
	return append(dst, name...), nil
}

// stringLen returns the length of the JSON string starting at pos+i (its quotes included),
// finding its end only: escapes and characters are checked when it is decoded.
func (s *scanner) stringLen(i int) (int, error) {
	for j := i + 1; ; j++ {
		if !s.more(j + 1) {
			return 0, errEOF
		}
		switch s.buf[s.pos+j] {
		case '\\':
			j++
		case '"':
			return j + 1 - i, nil
		}
	}
}

// value consumes the next value and returns it, whole; it is valid until the scanner reads
// again. Only its end is found here: its content is checked when it is decoded.
func (s *scanner) value() ([]byte, error) {
	c, ok := s.skipSpace()
	if !ok {
		return nil, errEOF
	}
	n := 0
	switch {
	case c == '{' || c == '[':
		for depth := 0; ; {
			if !s.more(n + 1) {
				return nil, errEOF
			}
			switch s.buf[s.pos+n] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			case '"':
				k, err := s.stringLen(n)
				if err != nil {
					return nil, err
				}
				n += k - 1
			}
			n++
			if depth == 0 {
				break
			}
		}
	case c == '"':
		k, err := s.stringLen(0)
		if err != nil {
			return nil, err
		}
		n = k
	default: // a number or a literal
		for s.more(n+1) && strings.IndexByte("+-.0123456789Eaeflnrstu", s.buf[s.pos+n]) >= 0 {
			n++
		}
		if n == 0 {
			return nil, syntaxError(c, "looking for beginning of value")
		}
	}
	v := s.buf[s.pos : s.pos+n]
	s.pos += n
	return v, nil
}

// syntaxError is encoding/json's error for the unexpected byte c.
func syntaxError(c byte, context string) error {
	q := strconv.Quote(string(c))
	switch c {
	case '\'':
		q = `'\''`
	case '"':
		q = `'"'`
	default:
		q = "'" + q[1:len(q)-1] + "'"
	}
	return fmt.Errorf("node map: invalid JSON: invalid character %s %s", q, context)
}
