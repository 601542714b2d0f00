package confload

import "errors"

// Problems collects what a Validate method finds: one *KeyError per bad key, in the
// order found.
type Problems []error

// Add records a problem with key (a fmt.Sprintf message, as KeyErr).
func (p *Problems) Add(key, format string, args ...any) {
	*p = append(*p, KeyErr(key, format, args...))
}

// Err returns the problems joined with errors.Join (nil when there are none).
func (p Problems) Err() error { return errors.Join(p...) }

// LogConfig is the "log" section both configurations share.
type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug | info | warn | error
	Format string `mapstructure:"format"` // text | json
}

// Check records the problems of the log section in p.
func (l LogConfig) Check(p *Problems) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		p.Add("log.level", "%q is not debug, info, warn or error", l.Level)
	}
	switch l.Format {
	case "text", "json":
	default:
		p.Add("log.format", "%q is not text or json", l.Format)
	}
}
