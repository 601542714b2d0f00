package edgetoken

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// decodeObject decodes b, which must be exactly one JSON object of valid UTF-8 without
// duplicate member names at any depth, into its members.
func decodeObject(b []byte, what string) (map[string]json.RawMessage, error) {
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%w: %s is not valid UTF-8", ErrMalformed, what)
	}
	if err := checkStrict(b); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
	}
	return m, nil
}

// checkStrict walks the JSON tokens of b: one object, nothing after it, no member name
// twice in one object (encoding/json would silently keep the last).
func checkStrict(b []byte) error {
	type frame struct {
		object  bool
		wantKey bool
		keys    map[string]bool
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var stack []*frame
	started := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if !started {
				return errors.New("empty")
			}
			if len(stack) != 0 {
				return errors.New("unexpected end")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if started && len(stack) == 0 {
			return errors.New("data after the object")
		}
		if !started {
			started = true
			if tok != json.Delim('{') {
				return errors.New("not a JSON object")
			}
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.wantKey {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					return fmt.Errorf("duplicate member %q", k)
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			obj := tok == json.Delim('{')
			f := &frame{object: obj, wantKey: obj}
			if obj {
				f.keys = map[string]bool{}
			}
			stack = append(stack, f)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value is complete: its object now waits for the next name.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
}
