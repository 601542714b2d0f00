package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/keel-relay/keel/internal/confload"
)

// schema is what the relay's configuration adds to the shared loader: its default,
// its environment prefix, sizes in bytes, auto switches and "issuer=file" trusted issuers.
func schema() *confload.Schema {
	return &confload.Schema{
		Default:   defaultYAML,
		EnvPrefix: EnvPrefix,
		Types: []confload.Type{{
			Type:   reflect.TypeFor[ByteSize](),
			Expect: byteSizeExpect,
			Decode: func(data any) (any, error) { return toByteSize(data) },
			Encode: func(v reflect.Value) any { return ByteSize(v.Int()).String() },
		}, {
			Type:   reflect.TypeFor[AutoByteSize](),
			Expect: autoByteSizeExpect,
			Decode: func(data any) (any, error) { return toAutoByteSize(data) },
			Encode: func(v reflect.Value) any { return AutoByteSize(v.Int()).String() },
		}, {
			Type:   reflect.TypeFor[AutoBool](),
			Expect: autoBoolExpect,
			Decode: func(data any) (any, error) { return toAutoBool(data) },
			Encode: func(v reflect.Value) any { return AutoBool(v.Int()).encode() },
		}},
		Hooks: []confload.Hook{trustedIssuerFromEnv},
	}
}

// formatDuration is time.Duration.String without trailing zero units: "2m", "1h".
func formatDuration(d time.Duration) string { return confload.FormatDuration(d) }

const (
	byteSizeExpect     = `a size such as "256MiB"`
	autoByteSizeExpect = `"auto" or a size such as "256MiB"`
)

// trustedIssuerFromEnv reads a trusted issuer from the environment: "issuer=file".
func trustedIssuerFromEnv(to reflect.Type, data any) (any, bool, error) {
	x, ok := data.(string)
	if !ok || to != reflect.TypeFor[TrustedIssuer]() {
		return nil, false, nil
	}
	iss, file, ok := strings.Cut(x, "=")
	if !ok {
		return nil, true, fmt.Errorf("invalid trusted issuer %q (want issuer=public_key_file)", x)
	}
	return map[string]any{"issuer": strings.TrimSpace(iss), "public_key_file": strings.TrimSpace(file)}, true, nil
}

func toAutoByteSize(data any) (AutoByteSize, error) {
	switch x := data.(type) {
	case string:
		return ParseAutoByteSize(x)
	case int, int64, uint64:
		n, err := toByteSize(data)
		if err != nil {
			return 0, fmt.Errorf("%w, or auto", err)
		}
		return AutoByteSize(n), nil
	}
	return 0, fmt.Errorf("expected %s, got %s", autoByteSizeExpect, confload.Describe(data))
}

func toByteSize(data any) (ByteSize, error) {
	switch x := data.(type) {
	case string:
		return ParseByteSize(x)
	case int:
		return toByteSize(int64(x))
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("invalid size %d: must not be negative", x)
		}
		return ByteSize(x), nil
	case uint64:
		return 0, fmt.Errorf("invalid size %d: too large", x)
	}
	return 0, fmt.Errorf("expected %s, got %s", byteSizeExpect, confload.Describe(data))
}
