package main

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kardianos/service"

	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/relaytest"
	"github.com/keel-relay/keel/storage"
)

// loaderFor returns the config loader `service ... --config path` would use.
func loaderFor(t *testing.T, path string) func() (*config.Config, string, bool, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	load := configFlags(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	return load
}

// TestServiceProgramStartStop drives the program through service.Interface as a service
// manager would: a real relay on loopback ports answers, Stop drains within the grace, and
// the store is closed (it opens again).
func TestServiceProgramStartStop(t *testing.T) {
	dir := t.TempDir()
	listen := relaytest.FreeAddr(t)
	conf := writeConfig(t, dir, "relay.yaml", relayConf{
		NodeID: "root", DataDir: filepath.Join(dir, "data"), Listen: listen, Admin: relaytest.FreeAddr(t),
	})
	logs := &relaytest.SyncBuffer{}
	prog := &program{load: loaderFor(t, conf), logOut: logs, exit: func(code int) {
		t.Errorf("program exited with %d on its own", code)
	}}
	var iface service.Interface = prog

	if err := iface.Start(nil); err != nil {
		t.Fatalf("Start: %v", err)
	}
	code, body := relaytest.Do(t, http.MethodGet, "http://"+listen+"/rudder/relay-api/1/system/status", nil)
	if code != http.StatusOK {
		t.Fatalf("status while running: %d %s", code, body)
	}

	began := time.Now()
	if err := iface.Stop(nil); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// shutdown_grace is 5s in writeConfig; nothing is in flight, so the drain is quick.
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Stop took %s, more than shutdown_grace", took)
	}
	if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", listen)
	}
	if !strings.Contains(logs.String(), "keel-relay stopped") {
		t.Errorf("no clean stop in the log:\n%s", logs.String())
	}

	cfg, _, _, err := loaderFor(t, conf)()
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.Open(relay.StorageOptions(cfg), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("store not closed by Stop: reopening: %v", err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestServiceProgramStartFails: a relay that cannot start fails Start, so the service
// manager reports it, and leaves nothing running.
func TestServiceProgramStartFails(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, conf, want string
	}{
		{"missing config", filepath.Join(dir, "missing.yaml"), "missing.yaml"},
		{"bad config", writeConfig(t, dir, "bad.yaml", relayConf{
			NodeID: "root", DataDir: filepath.Join(dir, "data"), Listen: "nowhere", Admin: "",
		}), "http.listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog := &program{load: loaderFor(t, tc.conf), logOut: io.Discard, exit: func(int) { t.Error("exit called") }}
			err := prog.Start(nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: got %v, want an error containing %q", err, tc.want)
			}
			if err := prog.Stop(nil); err != nil {
				t.Errorf("Stop after a failed Start: %v", err)
			}
		})
	}
}

func TestCmdServiceUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "keel-relay service: missing command\nRun 'keel-relay service --help' for usage.\n"},
		{[]string{"--config", "x"}, 2, `keel-relay service: the command comes before the flags, got "--config"`},
		{[]string{"restart"}, 2, `keel-relay service: unknown subcommand "restart"`},
		{[]string{"status", "--config", "x", "extra"}, 2, `keel-relay service status: unexpected argument "extra"`},
		{[]string{"status", "extra"}, 2, `keel-relay service status: unexpected argument "extra"`},
		{[]string{"start", "--bogus"}, 2, "flag provided but not defined: -bogus"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"service"}, tc.args...), &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("service %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
}

func TestPrepareInstall(t *testing.T) {
	dir := t.TempDir()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	good := writeConfig(t, dir, "good.yaml", relayConf{NodeID: "root", DataDir: data, Listen: "127.0.0.1:3030", Admin: ""})
	relative := writeConfig(t, dir, "relative.yaml", relayConf{NodeID: "root", DataDir: "keel-data", Listen: "127.0.0.1:3030", Admin: ""})

	for _, tc := range []struct {
		name, conf, user, want string
	}{
		{"relative data_dir", relative, me.Username, `data_dir "keel-data" is relative; a service needs an absolute path`},
		{"missing config", filepath.Join(dir, "nope.yaml"), me.Username, "nope.yaml"},
		{"unknown account", good, "keel-no-such-user", `account "keel-no-such-user"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := &service.Config{Option: service.KeyValue{}}
			err := prepareInstall(conf, loaderFor(t, tc.conf), tc.user, true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}

	conf := &service.Config{Option: service.KeyValue{}}
	if err := prepareInstall(conf, loaderFor(t, good), me.Username, true); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(conf.Arguments, " "), "service run --config "+good; got != want {
		t.Errorf("arguments %q, want %q", got, want)
	}
	if conf.UserName != me.Username {
		t.Errorf("user %q, want %q", conf.UserName, me.Username)
	}
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Errorf("data_dir not created 0750: %v %v", fi, err)
	}
	unit, _ := conf.Option["SystemdScript"].(string)
	for _, line := range []string{"ReadWritePaths=" + data, "ConditionFileNotEmpty=" + good} {
		if !strings.Contains(unit, line+"\n") {
			t.Errorf("unit lacks %q:\n%s", line, unit)
		}
	}
}

func TestServiceUnitRefusesPaths(t *testing.T) {
	for _, tc := range []struct{ dataDir, conf, want string }{
		{"/var/lib/my relay", "/etc/keel/relay.yaml", `path "/var/lib/my relay": spaces, quotes and {}$%;\ cannot go into a systemd unit here`},
		{"/var/lib/keel", "/etc/{{Path}}.yaml", `path "/etc/{{Path}}.yaml": spaces`},
		{"/var/lib/$HOME", "/etc/keel/relay.yaml", `path "/var/lib/$HOME": spaces`},
	} {
		_, err := serviceUnit(tc.dataDir, tc.conf)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serviceUnit(%q, %q): got %v, want %q", tc.dataDir, tc.conf, err, tc.want)
		}
	}
}

// TestServiceUnitMatchesPackagedUnit keeps the unit `service install` writes in step with
// the packaged init/keel-relay.service: the same settings, except those naming this
// installation's binary, account, config and data directory.
func TestServiceUnitMatchesPackagedUnit(t *testing.T) {
	local := map[string]bool{
		"Description": true, "Documentation": true, "ConditionFileIsExecutable": true, "ConditionFileNotEmpty": true,
		"ExecStart": true, "ExecReload": true, "User": true, "Group": true, "ReadWritePaths": true,
		"StateDirectory": true, "StateDirectoryMode": true,
	}
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
	packaged, err := os.ReadFile("../../init/keel-relay.service")
	if err != nil {
		t.Fatal(err)
	}
	unit, err := serviceUnit("/srv/keel", "/etc/keel/relay.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, got := settings(string(packaged)), settings(unit)
	for line := range want {
		if !got[line] {
			t.Errorf("init/keel-relay.service has %q; systemdUnitTemplate does not", line)
		}
	}
	for line := range got {
		if !want[line] {
			t.Errorf("systemdUnitTemplate has %q; init/keel-relay.service does not", line)
		}
	}
}
