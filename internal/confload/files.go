package confload

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
)

// Files is one kind of configuration (keel-relay's, keel-agent's): the schema it is read
// with and its file name in the system's config folder. Its methods are what each config
// package offers as Load, LoadBytes, Default, DefaultPath, EnvName and YAML; PT is *T.
type Files[T any, PT Validator[T]] struct {
	// Schema is the configuration's schema (its default, environment prefix and types).
	Schema *Schema
	// Name is the file name in the config folder, such as "relay.yaml".
	Name string
}

// DefaultPath returns the config file used when --config is not given: /etc/keel/NAME,
// or %ProgramData%\Keel\NAME on Windows.
func (f Files[T, PT]) DefaultPath() string {
	return DefaultPath(runtime.GOOS, os.Getenv, f.Name)
}

// Load returns the default overridden by the file at path and then by the environment,
// validated (see LoadFile for explicit and the error prefix).
func (f Files[T, PT]) Load(path string, explicit bool) (*T, error) {
	return LoadFile(path, explicit, func(file []byte) (*T, error) {
		return f.LoadBytes(file, os.LookupEnv)
	})
}

// LoadBytes is Load for a file's content and an environment lookup function (such as
// os.LookupEnv); a nil env means no environment.
func (f Files[T, PT]) LoadBytes(file []byte, env func(string) (string, bool)) (*T, error) {
	return Load[T, PT](f.Schema, file, env)
}

// Default returns the default configuration (no file, no environment). It panics only if
// the embedded default is invalid, which each config package's tests rule out.
func (f Files[T, PT]) Default() *T {
	c, err := f.LoadBytes(nil, nil)
	if err != nil {
		panic("config: embedded default is invalid: " + err.Error())
	}
	return c
}

// EnvName returns the environment variable that overrides a dotted config key.
func (f Files[T, PT]) EnvName(key string) string { return EnvName(f.Schema.EnvPrefix, key) }

// YAML returns c as YAML with the config file's key names, in a form Load reads back to
// the same value (see Schema.Marshal).
func (f Files[T, PT]) YAML(c *T) ([]byte, error) { return f.Schema.Marshal(c) }

// CheckRoundTrip is the property the config packages' fuzz targets check: the content of a
// file with an environment given as lines "NAME=value" either does not load, or loads to a
// configuration that validates and that YAML writes in a form LoadBytes reads back to the same
// value. It returns what broke (nil when nothing did).
func (f Files[T, PT]) CheckRoundTrip(file []byte, envText string) error {
	env := map[string]string{}
	for line := range strings.SplitSeq(envText, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	c, err := f.LoadBytes(file, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		return nil
	}
	if err := PT(c).Validate(); err != nil {
		return fmt.Errorf("LoadBytes accepted an invalid config: %w", err)
	}
	out, err := f.YAML(c)
	if err != nil {
		return fmt.Errorf("YAML(): %w", err)
	}
	back, err := f.LoadBytes(out, nil)
	if err != nil {
		return fmt.Errorf("YAML() output does not load: %w\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c) {
		return fmt.Errorf("round trip changed the config:\n%s", out)
	}
	return nil
}
