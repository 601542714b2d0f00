package main

import (
	"bufio"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kardianos/service"

	"github.com/keel-relay/keel/relay/relaytest"
)

// loaderFor returns the config loader `service ... --config path` would use.
func loaderFor(t *testing.T, path string) configLoader {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	load := configFlags(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	return load
}

func writeAgentYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServiceProgramIdle: without edge.relay the service starts, does nothing, and stops
// at once when asked.
func TestServiceProgramIdle(t *testing.T) {
	logs := &relaytest.SyncBuffer{}
	prog := &program{load: loaderFor(t, writeAgentYAML(t, "node_id: n1\n")), logOut: logs, exit: func(code int) {
		t.Errorf("program exited with %d on its own", code)
	}}
	var iface service.Interface = prog
	if err := iface.Start(nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	began := time.Now()
	if err := iface.Stop(nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("Stop took %s", took)
	}
	for _, want := range []string{"edge.relay is not set", "keel-agent service stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestServiceProgramEdge: with edge.relay set the service runs the edge daemon; when that
// ends without being asked to, the program exits non-zero so the service manager restarts it.
func TestServiceProgramEdge(t *testing.T) {
	exited := make(chan int, 1)
	logs := &relaytest.SyncBuffer{}
	dir := t.TempDir()
	prog := &program{load: loaderFor(t, writeAgentYAML(t, "node_id: n1\nedge: {relay: '127.0.0.1:7443', key_file: "+dir+"/edge.key, token_file: "+dir+"/token}\n")), logOut: logs, exit: func(code int) { exited <- code }}
	if err := prog.Start(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the program did not exit when the edge daemon stopped")
	}
	if !strings.Contains(logs.String(), "running the edge daemon") || !strings.Contains(logs.String(), "not enrolled") {
		t.Errorf("log:\n%s", logs.String())
	}
	if err := prog.Stop(nil); err == nil {
		t.Error("Stop after the edge daemon failed: no error")
	}
}

func TestServiceProgramStartFails(t *testing.T) {
	for _, tc := range []struct{ name, conf, want string }{
		{"missing config", filepath.Join(t.TempDir(), "missing.yaml"), "missing.yaml"},
		{"bad config", writeAgentYAML(t, "edge: {relay: nowhere}\n"), "edge.relay"},
	} {
		prog := &program{load: loaderFor(t, tc.conf), logOut: &relaytest.SyncBuffer{}, exit: func(int) { t.Error("exit called") }}
		if err := prog.Start(nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Start: %v, want %q", tc.name, err, tc.want)
		}
		if err := prog.Stop(nil); err != nil {
			t.Errorf("%s: Stop after a failed Start: %v", tc.name, err)
		}
	}
}

func TestPrepareInstall(t *testing.T) {
	good := writeAgentYAML(t, "node_id: n1\n")
	conf := &service.Config{Option: service.KeyValue{}}
	if err := prepareInstall(conf, loaderFor(t, filepath.Join(t.TempDir(), "nope.yaml")), true); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("missing config: %v", err)
	}
	if err := prepareInstall(conf, loaderFor(t, good), true); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(conf.Arguments, " "), "service run --config "+good; got != want {
		t.Errorf("arguments %q, want %q", got, want)
	}
	if conf.UserName != "" {
		t.Errorf("user %q, want root (empty)", conf.UserName)
	}
	unit, _ := conf.Option["SystemdScript"].(string)
	if !strings.Contains(unit, "ConditionFileNotEmpty="+good+"\n") {
		t.Errorf("unit lacks the config condition:\n%s", unit)
	}
	if _, err := serviceUnit("/etc/my keel/agent.yaml"); err == nil || !strings.Contains(err.Error(), "spaces") {
		t.Errorf("path with a space: %v", err)
	}
}

// TestServiceUnitMatchesPackagedUnit keeps the unit `service install` writes in step with
// the packaged init/keel-agent.service, apart from the lines naming this installation.
func TestServiceUnitMatchesPackagedUnit(t *testing.T) {
	local := map[string]bool{"Description": true, "Documentation": true, "ConditionFileIsExecutable": true, "ConditionFileNotEmpty": true, "ExecStart": true}
	settings := func(unit string) map[string]bool {
		set := map[string]bool{}
		sc := bufio.NewScanner(strings.NewReader(unit))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			key, _, ok := strings.Cut(line, "=")
			if !ok || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "{{") || local[key] {
				continue
			}
			set[line] = true
		}
		return set
	}
	packaged, err := os.ReadFile("../../init/keel-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	unit, err := serviceUnit("/etc/keel/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, got := settings(string(packaged)), settings(unit)
	for line := range want {
		if !got[line] {
			t.Errorf("init/keel-agent.service has %q; systemdUnitTemplate does not", line)
		}
	}
	for line := range got {
		if !want[line] {
			t.Errorf("systemdUnitTemplate has %q; init/keel-agent.service does not", line)
		}
	}
}
