package edged

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/keel-relay/keel/agent/config"
)

// MaxDelta bounds a PushConfig delta.
const MaxDelta = 64 << 10

// Delta is a PushConfig config delta: a YAML (or JSON) mapping relative to the agent's
// edge section. Only what it names changes:
//
//	tools:
//	  agent_run: {command: [/opt/rudder/bin/rudder, agent, run, -D, "{classes}"]}
//	  shell: {enabled: true}
//	labels: [site=paris]
//
// Unknown keys, wrong types, nulls and more than one document are errors; the result must
// pass the config's validation. Nothing is persisted: a restart returns to the file.
type Delta struct {
	Tools  *toolsDelta `yaml:"tools"`
	Labels *[]string   `yaml:"labels"`
}

type toolsDelta struct {
	AgentRun *struct {
		Command *[]string `yaml:"command"`
	} `yaml:"agent_run"`
	Shell *struct {
		Enabled *bool `yaml:"enabled"`
	} `yaml:"shell"`
}

// ParseDelta parses a delta strictly. An empty delta (or only white space) changes
// nothing.
func ParseDelta(b []byte) (*Delta, error) {
	if len(b) > MaxDelta {
		return nil, fmt.Errorf("config delta is %d bytes, more than %d", len(b), MaxDelta)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return &Delta{}, nil
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("config delta: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("config delta: more than one document")
	}
	if err := checkNoNull(&root, ""); err != nil {
		return nil, fmt.Errorf("config delta: %w", err)
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil, errors.New("config delta: not a mapping")
	}
	// KnownFields refuses unknown keys; decode again with it (a Node has no such option).
	var d Delta
	strict := yaml.NewDecoder(bytes.NewReader(b))
	strict.KnownFields(true)
	if err := strict.Decode(&d); err != nil {
		return nil, fmt.Errorf("config delta: %w", err)
	}
	return &d, nil
}

// checkNoNull refuses null values and anchors/aliases (which could blow up in size).
func checkNoNull(n *yaml.Node, path string) error {
	switch n.Kind {
	case yaml.AliasNode:
		return fmt.Errorf("%s: aliases are not allowed", orRoot(path))
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return fmt.Errorf("%s: null is not allowed", orRoot(path))
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkNoNull(n.Content[i+1], join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := checkNoNull(c, fmt.Sprintf("%s[%d]", orRoot(path), i)); err != nil {
				return err
			}
		}
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkNoNull(c, path); err != nil {
				return err
			}
		}
	}
	if n.Anchor != "" {
		return fmt.Errorf("%s: anchors are not allowed", orRoot(path))
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(top)"
	}
	return path
}

// Apply returns a copy of e with the delta applied, validated as the config file would
// be. e is not modified.
func (d *Delta) Apply(e config.EdgeConfig) (config.EdgeConfig, error) {
	out := e
	out.Labels = slices.Clone(e.Labels)
	out.Tools.AgentRun.Command = slices.Clone(e.Tools.AgentRun.Command)
	if d.Labels != nil {
		out.Labels = slices.Clone(*d.Labels)
	}
	if t := d.Tools; t != nil {
		if t.AgentRun != nil && t.AgentRun.Command != nil {
			out.Tools.AgentRun.Command = slices.Clone(*t.AgentRun.Command)
		}
		if t.Shell != nil && t.Shell.Enabled != nil {
			out.Tools.Shell.Enabled = *t.Shell.Enabled
		}
	}
	// Validate through the config package: the same rules and messages as the file.
	c := config.Default()
	c.Edge = out
	if err := c.Validate(); err != nil {
		return e, fmt.Errorf("config delta: %w", err)
	}
	return out, nil
}
