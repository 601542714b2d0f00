package confload

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Marshal returns the config c (a pointer to a config struct) as YAML with the config
// file's key names, in a form Load reads back to the same value: durations and custom
// types in their human form ("5m", "256MiB"), lists in flow style.
func (s *Schema) Marshal(c any) ([]byte, error) {
	n, err := s.toNode(reflect.ValueOf(c).Elem())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return buf.Bytes(), nil
}

// toNode turns a config value into a YAML node.
func (s *Schema) toNode(v reflect.Value) (*yaml.Node, error) {
	n := new(yaml.Node)
	var err error
	ct := s.custom(v.Type())
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		err = n.Encode(FormatDuration(time.Duration(v.Int())))
	case ct != nil && ct.Encode != nil:
		err = n.Encode(ct.Encode(v))
	case s.isSection(v.Type()):
		n.Kind = yaml.MappingNode
		for i := range v.NumField() {
			key := new(yaml.Node)
			if err := key.Encode(tagName(v.Type().Field(i))); err != nil {
				return nil, err
			}
			val, err := s.toNode(v.Field(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, key, val)
		}
	default:
		err = n.Encode(v.Interface())
		if n.Kind == yaml.SequenceNode {
			n.Style = yaml.FlowStyle
		}
	}
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return n, nil
}

// FormatDuration is time.Duration.String without trailing zero units: "2m", "1h".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
