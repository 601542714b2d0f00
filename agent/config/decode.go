package config

import (
	"time"

	"github.com/keel-relay/keel/internal/confload"
)

// schema is what the agent's configuration adds to the shared loader: its default
// and its environment prefix (it has no value types of its own).
func schema() *confload.Schema {
	return &confload.Schema{Default: defaultYAML, EnvPrefix: EnvPrefix}
}

// formatDuration is time.Duration.String without trailing zero units: "2m", "1h".
func formatDuration(d time.Duration) string { return confload.FormatDuration(d) }
