package edged

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/internal/wire/capabilities"
)

// TestCapabilitiesWithinBounds: capabilities the relay would refuse (too many labels) stop
// the daemon and an enrollment at once, naming edge.labels, before anything is written or
// sent; at the bound they are accepted.
func TestCapabilitiesWithinBounds(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, n := range []int{capabilities.MaxItems, capabilities.MaxItems + 1} {
		t.Run(fmt.Sprint(n, " labels"), func(t *testing.T) {
			dir := t.TempDir()
			cfg := config.Default()
			cfg.NodeID = uuid.NewString()
			cfg.Edge.Relay = "127.0.0.1:1"
			cfg.Edge.KeyFile, cfg.Edge.TokenFile = filepath.Join(dir, "edge.key"), filepath.Join(dir, "token")
			for i := range n {
				cfg.Edge.Labels = append(cfg.Edge.Labels, fmt.Sprintf("k%d=v", i))
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			_, err := New(cfg, Options{}, log)
			if n <= capabilities.MaxItems {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "edge.labels") || !strings.Contains(err.Error(), "at most 64") {
				t.Fatalf("New = %v, want an error naming edge.labels and the bound", err)
			}
			_, err = Enroll(context.Background(), cfg, EnrollRequest{Relay: cfg.Edge.Relay, Token: "x"}, log)
			if err == nil || !strings.Contains(err.Error(), "edge.labels") {
				t.Fatalf("Enroll = %v, want an error naming edge.labels", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("Enroll wrote %d files", len(entries))
			}
		})
	}
}
