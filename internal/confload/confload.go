// Package confload is the configuration loader shared by keel-relay (relay/config) and
// keel-agent (agent/config): a struct with mapstructure tags, an embedded default YAML, a
// YAML file and environment variables PREFIX_<SECTION>_<KEY>, layered in one viper
// instance and decoded strictly.
//
// Strict means: unknown keys in the file are errors (matched case-insensitively, as
// viper does); values are converted without guessing (no int->string, no
// number->duration); every error starts with the dotted key it is about and, when an
// environment variable set that key, ends with "(from NAME)". Each config package keeps
// its own struct, default, custom value types (Schema.Types, Schema.Hooks), Validate
// rules and environment prefix.
package confload

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Schema is what one configuration adds to the shared loader.
type Schema struct {
	// Default is the embedded default configuration (YAML); it sets every key.
	Default string
	// EnvPrefix is the prefix of the environment variables: with "KEEL_", the key
	// "http.listen" is set by KEEL_HTTP_LISTEN.
	EnvPrefix string
	// Types are the configuration's own leaf value types (such as a size in bytes).
	Types []Type
	// Hooks are extra conversions, tried in order before any other.
	Hooks []Hook
}

// Type is a custom leaf value type: how to read it from a raw value, how to name it in
// error messages and how to write it back.
type Type struct {
	// Type is the Go type of the config fields it applies to.
	Type reflect.Type
	// Expect says what a field of the type wants, for error messages:
	// `a size such as "256MiB"` (in "expected ..., got ...").
	Expect string
	// Decode converts a raw YAML value, or a string from the environment, to Type.
	Decode func(data any) (any, error)
	// Encode returns the value as Marshal writes it (such as "256MiB"); nil writes
	// the value as it is.
	Encode func(v reflect.Value) any
}

// Hook converts a raw value (from YAML, or a string from the environment) for a field of
// type to. It returns handled false to leave the value to the next hook and the built-in
// conversions.
type Hook func(to reflect.Type, data any) (out any, handled bool, err error)

// Validator is a configuration that checks itself once decoded.
type Validator[T any] interface {
	*T
	Validate() error
}

// Load layers s.Default, the file content (nil or empty: none) and the environment (env
// looks a variable up, as os.LookupEnv does; nil: no environment) in one viper instance,
// decodes the result strictly into a T, turns nil lists into empty ones and validates it.
// The errors about keys set by the environment name the variable.
func Load[T any, PT Validator[T]](s *Schema, file []byte, env func(string) (string, bool)) (*T, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(strings.NewReader(s.Default)); err != nil {
		return nil, fmt.Errorf("embedded default: %w", err)
	}
	configType := reflect.TypeFor[T]()
	if len(file) > 0 {
		m, err := s.parseFile(file, configType)
		if err != nil {
			return nil, err
		}
		if err := v.MergeConfigMap(m); err != nil {
			return nil, err
		}
	}
	// Every key is looked up explicitly: viper's AutomaticEnv only reaches keys it
	// already knows, and unknown PREFIX_* variables (other tools') are ignored.
	fromEnv := make(map[string]string)
	if env != nil {
		for _, key := range s.Keys(configType) {
			name := EnvName(s.EnvPrefix, key)
			if val, ok := env(name); ok {
				v.Set(key, val)
				fromEnv[key] = name
			}
		}
	}
	c := new(T)
	err := v.UnmarshalExact(c, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = mapstructure.DecodeHookFuncType(s.decodeHook)
		dc.WeaklyTypedInput = false
	})
	if err != nil {
		return nil, withEnvSource(errors.Join(decodeErrors(err)...), fromEnv)
	}
	emptyLists(reflect.ValueOf(c).Elem())
	if err := PT(c).Validate(); err != nil {
		return nil, withEnvSource(err, fromEnv)
	}
	return c, nil
}

// emptyLists sets every nil slice in a config struct to an empty one, so that a loaded
// config compares equal to one written out by hand with []T{}.
func emptyLists(v reflect.Value) {
	for i := range v.NumField() {
		switch f := v.Field(i); {
		case f.Kind() == reflect.Struct:
			emptyLists(f)
		case f.Kind() == reflect.Slice && f.IsNil():
			f.Set(reflect.MakeSlice(f.Type(), 0, 0))
		}
	}
}

// LoadFile reads the config file at path and passes its content to load. When explicit
// is true (the path came from --config) the file must exist; otherwise a missing file,
// or an empty path, passes nil (the embedded default alone). Errors start with "config"
// and name the file when there is one.
func LoadFile[T any](path string, explicit bool, load func(file []byte) (T, error)) (T, error) {
	var file []byte
	prefix := "config " + path
	if path == "" && !explicit {
		prefix = "config"
	} else {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			file = b
		case !explicit && errors.Is(err, fs.ErrNotExist):
			prefix = "config"
		default:
			var zero T
			return zero, fmt.Errorf("config: %w", err)
		}
	}
	c, err := load(file)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", prefix, err)
	}
	return c, nil
}

// EnvName returns the environment variable that overrides a dotted config key:
// EnvName("KEEL_", "forward.tls.ca_file") is "KEEL_FORWARD_TLS_CA_FILE".
func EnvName(prefix, key string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys returns the dotted keys of every value (not section) of a config struct type, in
// field order: the keys the environment can set.
func (s *Schema) Keys(t reflect.Type) []string { return s.leafKeys(t, "") }

// DefaultPath returns the path of the config file name in the system's config folder
// for goos: /etc/keel/NAME, or %ProgramData%\Keel\NAME on Windows (getenv looks up
// ProgramData; C:\ProgramData when it is empty).
func DefaultPath(goos string, getenv func(string) string, name string) string {
	if goos != "windows" {
		return "/etc/keel/" + name
	}
	dir := strings.TrimRight(getenv("ProgramData"), `\/`)
	if dir == "" {
		dir = `C:\ProgramData`
	}
	return dir + `\Keel\` + name
}
