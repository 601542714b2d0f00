package confload

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"
)

// KeyError is a problem with one config key; its message starts with the key.
type KeyError struct {
	Key string // dotted key, possibly with an index: "http.allowed_networks[1]"
	Msg string
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Msg }

// KeyErr returns a *KeyError about key with a fmt.Sprintf message. Validate methods use
// it, so that Load can add "(from NAME)" to the errors about keys the environment set.
func KeyErr(key, format string, args ...any) error {
	return &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// tagName returns the config key name of a struct field.
func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
	return name
}

// isSection reports whether a field type is a nested section rather than a value.
func (s *Schema) isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && s.custom(t) == nil
}

// custom returns the custom type for t, or nil.
func (s *Schema) custom(t reflect.Type) *Type {
	for i := range s.Types {
		if s.Types[i].Type == t {
			return &s.Types[i]
		}
	}
	return nil
}

// leafKeys returns the dotted keys of every value in a section type, in field order.
func (s *Schema) leafKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		key := prefix + tagName(f)
		if s.isSection(f.Type) {
			keys = append(keys, s.leafKeys(f.Type, key+".")...)
		} else {
			keys = append(keys, key)
		}
	}
	return keys
}

// parseFile parses one YAML document and checks its shape against the config
// type: every key must exist (matched case-insensitively, as viper does) and
// every section must be a mapping. It returns the document with lower-cased keys
// and null sections removed, ready to merge over the default.
func (s *Schema) parseFile(file []byte, t reflect.Type) (map[string]any, error) {
	dec := yaml.NewDecoder(strings.NewReader(string(file)))
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("parsing YAML: more than one document (a second \"---\")")
	}
	var errs []error
	out := s.checkSection(doc, t, "", &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (s *Schema) checkSection(m map[string]any, t reflect.Type, prefix string, errs *[]error) map[string]any {
	fields := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		fields[tagName(t.Field(i))] = t.Field(i)
	}
	out := make(map[string]any, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		val := m[k]
		lk := strings.ToLower(k)
		key := prefix + lk
		f, ok := fields[lk]
		switch {
		case !ok:
			*errs = append(*errs, fmt.Errorf("unknown key %q", prefix+k))
			continue
		case hasKey(out, lk):
			*errs = append(*errs, fmt.Errorf("duplicate key %q (keys are case-insensitive)", key))
			continue
		}
		sub, isMap := asMap(val)
		section := s.isSection(f.Type)
		switch {
		case section && val == nil:
			// "section:" with nothing under it keeps the defaults.
		case section && !isMap:
			*errs = append(*errs, KeyErr(key, "expected a mapping, got %s", Describe(val)))
		case section:
			out[lk] = s.checkSection(sub, f.Type, key+".", errs)
		case isMap:
			*errs = append(*errs, KeyErr(key, "expected %s, got a mapping", s.expectation(f.Type)))
		case f.Type.Kind() == reflect.Slice && isString(val):
			// Comma-separated lists are for the environment; in the file a string
			// is more likely a shell command line than a one-item list.
			*errs = append(*errs, KeyErr(key, "expected a list such as [a, b], got %s", Describe(val)))
		default:
			out[lk] = val
		}
	}
	return out
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

// asMap returns a YAML mapping with its keys as strings.
func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}

// decodeHook converts a raw value (from YAML, or a string from the environment)
// to the type of the config field, strictly: no silent int->string or
// number->duration guessing.
func (s *Schema) decodeHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	for _, h := range s.Hooks {
		if out, ok, err := h(to, data); ok || err != nil {
			return out, err
		}
	}
	if to == reflect.TypeFor[time.Duration]() {
		return toDuration(data)
	}
	if ct := s.custom(to); ct != nil {
		return ct.Decode(data)
	}
	switch to.Kind() {
	case reflect.String:
		if _, ok := data.(string); !ok {
			return nil, fmt.Errorf("expected a string, got %s", Describe(data))
		}
	case reflect.Bool:
		switch x := data.(type) {
		case bool:
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return nil, fmt.Errorf("invalid boolean %q (want true or false)", x)
			}
			return b, nil
		default:
			return nil, fmt.Errorf("expected true or false, got %s", Describe(data))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return toInt(data, to)
	case reflect.Slice:
		switch x := data.(type) {
		case []any:
		case string: // from the environment: comma-separated
			items := []string{}
			for item := range strings.SplitSeq(x, ",") {
				if item = strings.TrimSpace(item); item != "" {
					items = append(items, item)
				}
			}
			return items, nil
		default:
			return nil, fmt.Errorf("expected a list, got %s", Describe(data))
		}
	case reflect.Struct:
		if _, ok := asMap(data); !ok {
			return nil, fmt.Errorf("expected a mapping, got %s", Describe(data))
		}
	}
	return data, nil
}

func toDuration(data any) (time.Duration, error) {
	switch x := data.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (want e.g. 30s, 5m, 1h)", x)
		}
		return d, nil
	case int, int64, uint64:
		if x == 0 || x == int64(0) {
			return 0, nil
		}
		return 0, fmt.Errorf("duration %d has no unit (write e.g. \"%ds\")", x, x)
	}
	return 0, fmt.Errorf("expected %s, got %s", durationExpect, Describe(data))
}

const durationExpect = `a duration such as "30s"`

func toInt(data any, to reflect.Type) (any, error) {
	var n int64
	switch x := data.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case uint64:
		return nil, fmt.Errorf("integer %d is out of range", x)
	case string:
		v, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid integer %q", x)
		}
		n = v
	default:
		return nil, fmt.Errorf("expected an integer, got %s", Describe(data))
	}
	out := reflect.New(to).Elem()
	if out.OverflowInt(n) {
		return nil, fmt.Errorf("integer %d is out of range", n)
	}
	out.SetInt(n)
	return out.Interface(), nil
}

// expectation describes what a field of type t wants, for error messages.
func (s *Schema) expectation(t reflect.Type) string {
	if t == reflect.TypeFor[time.Duration]() {
		return durationExpect
	}
	if ct := s.custom(t); ct != nil {
		return ct.Expect
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	}
	return t.String()
}

// Describe names a raw YAML value for error messages: "null", "boolean true",
// `string "x"`, "integer 5", "number 1.5", "a list", "a mapping".
func Describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case string:
		return fmt.Sprintf("string %q", x)
	case int, int64, uint64:
		return fmt.Sprintf("integer %v", x)
	case float64:
		return fmt.Sprintf("number %v", x)
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	}
	return fmt.Sprintf("a value of type %T", v)
}

// decodeErrors turns mapstructure's nested errors into one KeyError per key.
func decodeErrors(err error) []error {
	if de, ok := err.(*mapstructure.DecodeError); ok {
		if de.Name() == "" {
			return []error{de.Unwrap()}
		}
		return []error{&KeyError{Key: de.Name(), Msg: de.Unwrap().Error()}}
	}
	switch x := err.(type) {
	case interface{ Unwrap() []error }:
		var out []error
		for _, e := range x.Unwrap() {
			out = append(out, decodeErrors(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		if inner := x.Unwrap(); inner != nil {
			return decodeErrors(inner)
		}
	}
	return []error{err}
}

// withEnvSource adds "(from PREFIX_...)" to the errors about keys that were set by
// the environment, so an operator knows where to look.
func withEnvSource(err error, fromEnv map[string]string) error {
	if len(fromEnv) == 0 {
		return err
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		var ke *KeyError
		if errors.As(e, &ke) {
			root, _, _ := strings.Cut(ke.Key, "[")
			if name, ok := fromEnv[root]; ok {
				e = &KeyError{Key: ke.Key, Msg: ke.Msg + " (from " + name + ")"}
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}
