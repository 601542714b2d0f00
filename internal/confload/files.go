package confload

import (
	"os"
	"runtime"
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
