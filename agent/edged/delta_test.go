package edged

import (
	"reflect"
	"strings"
	"testing"

	"github.com/keel-relay/keel/agent/config"
)

func TestParseDeltaApply(t *testing.T) {
	base := config.Default().Edge
	for _, tc := range []struct {
		name, delta string
		check       func(e config.EdgeConfig) bool
	}{
		{"empty", "", func(e config.EdgeConfig) bool { return reflect.DeepEqual(e, base) }},
		{"shell on (yaml)", "tools: {shell: {enabled: true}}", func(e config.EdgeConfig) bool { return e.Tools.Shell.Enabled }},
		{"shell on (json)", `{"tools": {"shell": {"enabled": true}}}`, func(e config.EdgeConfig) bool { return e.Tools.Shell.Enabled }},
		{"command", "tools:\n  agent_run:\n    command: [/bin/run, '{classes}']\n", func(e config.EdgeConfig) bool {
			return reflect.DeepEqual(e.Tools.AgentRun.Command, []string{"/bin/run", "{classes}"}) && !e.Tools.Shell.Enabled
		}},
		{"labels", `labels: ["site=paris", "rack=4"]`, func(e config.EdgeConfig) bool { return len(e.Labels) == 2 }},
		{"labels cleared", `labels: []`, func(e config.EdgeConfig) bool { return len(e.Labels) == 0 }},
	} {
		d, err := ParseDelta([]byte(tc.delta))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got, err := d.Apply(base)
		if err != nil || !tc.check(got) {
			t.Errorf("%s: %+v %v", tc.name, got, err)
		}
	}
	if !reflect.DeepEqual(base, config.Default().Edge) {
		t.Error("Apply modified its input")
	}
}

func TestParseDeltaBad(t *testing.T) {
	for _, tc := range []struct{ name, delta, want string }{
		{"not yaml", "tools: [", "config delta"},
		{"scalar", "42", "not a mapping"},
		{"list", "[a, b]", "not a mapping"},
		{"unknown top key", "relay: evil:1", "field relay not found"},
		{"unknown tool", "tools: {ssh: {enabled: true}}", "field ssh not found"},
		{"unknown tool key", "tools: {shell: {enabled: true, allow: [ls]}}", "field allow not found"},
		{"not a boolean", "tools: {shell: {enabled: maybe}}", "cannot unmarshal"},
		{"number as boolean", "tools: {shell: {enabled: 1}}", "cannot unmarshal"},
		{"command as string", "tools: {agent_run: {command: /bin/run}}", "cannot unmarshal"},
		{"command list of lists", "tools: {agent_run: {command: [[a]]}}", "cannot unmarshal"},
		{"null section", "tools: null", "tools: null is not allowed"},
		{"null value", "tools: {shell: {enabled: ~}}", "tools.shell.enabled: null"},
		{"null item", "labels: [a=1, null]", "labels[1]: null"},
		{"two documents", "tools: {}\n---\nlabels: []\n", "more than one document"},
		{"alias", "labels: &x [a=1]\ntools: {agent_run: {command: *x}}", "not allowed"},
		{"too big", "labels: [" + strings.Repeat("a=1,", MaxDelta/4) + "]", "more than"},
		{"empty command", "tools: {agent_run: {command: []}}", "edge.tools.agent_run.command: must not be empty"},
		{"placeholder in program", "tools: {agent_run: {command: ['{classes}']}}", "the program must not contain a placeholder"},
		{"bad placeholder", "tools: {agent_run: {command: [run, '{hostname}']}}", "unknown placeholder"},
		{"bad label", "labels: [oops]", "edge.labels[0]"},
	} {
		d, err := ParseDelta([]byte(tc.delta))
		if err == nil {
			_, err = d.Apply(config.Default().Edge)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzParseDelta(f *testing.F) {
	f.Add([]byte("tools: {shell: {enabled: true}}"))
	f.Add([]byte(`{"tools":{"agent_run":{"command":["/bin/x","{classes}"]}},"labels":["a=b"]}`))
	f.Add([]byte("labels: &a [x=1]\n"))
	f.Add([]byte("---\n---\n"))
	base := config.Default().Edge
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDelta(b)
		if err != nil {
			return
		}
		got, err := d.Apply(base)
		if err != nil {
			if !reflect.DeepEqual(got, base) {
				t.Fatal("a refused delta changed the config")
			}
			return
		}
		c := config.Default()
		c.Edge = got
		if err := c.Validate(); err != nil {
			t.Fatalf("applied delta gives an invalid config: %v", err)
		}
	})
}
