package edged

import (
	"maps"
	"slices"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// edgeConfig returns the merged edge config in use: the file's, then the deltas pushed.
func (d *Daemon) edgeConfig() config.EdgeConfig {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.edge
}

// capabilities returns what the daemon declares now.
func (d *Daemon) capabilities() *edgepb.EdgeCapabilities {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Capabilities(d.edge)
}

// ConfigVersion returns the version of the last config delta applied ("" = none).
func (d *Daemon) ConfigVersion() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.configVersion
}

// pushConfig applies a config delta (PushConfig) to the merged config in memory; when
// that changes the capabilities, the stream writer sends a CapabilityUpdate.
func (d *Daemon) pushConfig(pc *edgepb.PushConfig) {
	before, after, err := d.applyDelta(pc)
	if err != nil {
		d.log.Error("edge: config push refused", "version", pc.GetVersion(), "err", err)
		return
	}
	changed := capabilitiesDiffer(before, after)
	d.log.Info("edge: config applied", "version", pc.GetVersion(), "tools", after.GetLocalTools(), "capabilities_changed", changed)
	if changed {
		signal(d.capsChanged)
	}
}

// applyDelta parses pc's delta and applies it, returning the capabilities before and
// after; on an error the config is left as it was.
func (d *Daemon) applyDelta(pc *edgepb.PushConfig) (before, after *edgepb.EdgeCapabilities, err error) {
	delta, err := ParseDelta(pc.GetConfigDelta())
	if err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	next, err := delta.Apply(d.edge)
	if err != nil {
		return nil, nil, err
	}
	before = Capabilities(d.edge)
	d.edge, d.configVersion = next, pc.GetVersion()
	return before, Capabilities(d.edge), nil
}

// capabilitiesDiffer reports whether a and b declare other tools or labels (OS and
// architecture do not change at run time).
func capabilitiesDiffer(a, b *edgepb.EdgeCapabilities) bool {
	return !slices.Equal(a.GetLocalTools(), b.GetLocalTools()) || !maps.Equal(a.GetCustomLabels(), b.GetCustomLabels())
}
