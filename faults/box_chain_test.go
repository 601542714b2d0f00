package faults

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/uploadname"
	"github.com/keel-relay/keel/relay/relaytest"
)

// TestBoxSubRelayChain: a node uploads to a sub-relay (lower), whose upstream is another Keel
// relay (upper, over TLS, its key pinned), whose upstream records: each upload arrives at the
// recording root once, with its name and bytes. The upper relay checks the lower one's
// upstream_auth credentials against its own htpasswd files, as Apache checked relayd's.
func TestBoxSubRelayChain(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	node := nodeUUID()
	upperNodes, lowerNodes := filepath.Join(dir, "upper-nodes.json"), filepath.Join(dir, "lower-nodes.json")
	relaytest.WriteFileAtomic(t, upperNodes, nodeMapOf(map[string]string{"upper": "root", "lower": "upper", node: "lower"}))
	relaytest.WriteFileAtomic(t, lowerNodes, nodeMapOf(map[string]string{"lower": "upper", node: "lower"}))
	root := newRecorder(t, "")
	root.up(t)

	upperDir, lowerDir := filepath.Join(dir, "upper"), filepath.Join(dir, "lower")
	// The lower relay's credentials upstream, and the upper relay's htpasswd files accepting them.
	writeFile(t, lowerDir, "upstream-password", []byte("lower-main\n"))
	writeFile(t, lowerDir, "upstream-default-password", []byte("lower-initial\n"))
	writeHtpasswd(t, upperDir, "htpasswd-webdav-initial", "rudder:"+shaHash("lower-initial"))
	writeHtpasswd(t, upperDir, "htpasswd-webdav", "rudder:"+shaHash("lower-main"))
	// The node's credentials at the lower relay.
	writeHtpasswd(t, lowerDir, "htpasswd-webdav-initial", initialUser+":"+initialAPR1)
	writeHtpasswd(t, lowerDir, "htpasswd-webdav", bcryptUser+":"+bcryptHash(t, bcryptPass))
	writeFile(t, upperDir, "upstream-password", []byte("upper-main\n"))

	upperAPI, upperAdm := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	us := boxSettings(baseSettings("upper", filepath.Join(upperDir, "data"), upperNodes, upperAPI, upperAdm), upperDir)
	us["role"] = "relay"
	us["upstream"] = fmt.Sprintf("%q", root.URL())
	us["upstream_auth.password_file"] = fmt.Sprintf("%q", filepath.Join(upperDir, "upstream-password"))
	// The upper relay's API speaks TLS with its agent key, which the lower relay pins.
	upperKey := selfSigned(t, newRSAKey(t), "upper", "")
	us["http.tls_cert"] = fmt.Sprintf("%q", writeFile(t, upperDir, "agent.cert", upperKey.certPEM))
	us["http.tls_key"] = fmt.Sprintf("%q", writeFile(t, upperDir, "localhost.priv", upperKey.keyPEM))
	upper := startRelayTLS(t, "upper", writeConfig(t, upperDir, "relay.yaml", us), upperAPI, upperAdm)

	lowerAPI, lowerAdm := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	ls := boxSettings(baseSettings("lower", filepath.Join(lowerDir, "data"), lowerNodes, lowerAPI, lowerAdm), lowerDir)
	ls["role"] = "relay"
	ls["upstream"] = fmt.Sprintf("%q", upper.api)
	ls["forward.tls"] = fmt.Sprintf("{key_hash: %q}", upperKey.pin())
	ls["upstream_auth.password_file"] = fmt.Sprintf("%q", filepath.Join(lowerDir, "upstream-password"))
	ls["upstream_auth.default_password_file"] = fmt.Sprintf("%q", filepath.Join(lowerDir, "upstream-default-password"))
	lower := startRelay(t, "lower", writeConfig(t, lowerDir, "relay.yaml", ls), lowerAPI, lowerAdm)

	c := newClient(30 * time.Second)
	now := time.Now()
	gz, sign := inventoryNames(now, node)
	upd, _ := inventoryNames(now.Add(time.Minute), node)
	sent := []sentUpload{
		{"inventories", sign, initialUser, initialPass, content(1, 3<<10)},
		{"inventories", gz, initialUser, initialPass, content(2, 40<<10)},
		{"inventory-updates", upd, bcryptUser, bcryptPass, content(3, 30<<10)},
		{"reports", reportName(now, node), bcryptUser, bcryptPass, content(4, 5<<10)},
		{"reports", reportName(now.Add(time.Minute), node), bcryptUser, bcryptPass, content(5, 1<<20)},
	}
	for _, u := range sent {
		if code, _, b, err := agentPut(c, lower.api+"/"+u.kind+"/"+u.name, u.user, u.pass, u.body, false); err != nil || code != http.StatusCreated {
			t.Fatalf("PUT /%s/%s at the lower relay: %d %q %v, want 201", u.kind, u.name, code, b, err)
		}
	}
	relaytest.Eventually(t, 60*time.Second, fmt.Sprintf("%d uploads at the root", len(sent)), func() bool {
		return len(root.got()) >= len(sent)
	})
	time.Sleep(500 * time.Millisecond) // room for a duplicate to show
	got := root.got()
	if len(got) != len(sent) {
		t.Errorf("the root got %d PUTs, want %d: %+v", len(got), len(sent), got)
	}
	for _, u := range sent {
		i := slices.IndexFunc(got, func(r received) bool { return r.Kind == u.kind && r.Name == u.name })
		if i < 0 {
			t.Errorf("/%s/%s never reached the root", u.kind, u.name)
			continue
		}
		if r := got[i]; r.Sum != sha256Hex(u.body) || r.Size != len(u.body) {
			t.Errorf("/%s/%s at the root: %d bytes %s, want %d bytes %s", u.kind, u.name, r.Size, r.Sum, len(u.body), sha256Hex(u.body))
		}
	}
}

// TestBoxRootHandoff: at the root, uploads are handed to the Rudder server as files in
// agent_uploads.root_dir (inventories/incoming, inventories/accepted-nodes-updates,
// reports/incoming): whole, under their names, with nothing else left in those directories;
// a root without root_dir answers 404 on the upload paths.
func TestBoxRootHandoff(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	node := nodeUUID()
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, nodeMapOf(map[string]string{"root": "root", node: "root"}))
	writeHtpasswd(t, dir, "htpasswd-webdav-initial", initialUser+":"+initialAPR1)
	writeHtpasswd(t, dir, "htpasswd-webdav", bcryptUser+":"+bcryptHash(t, bcryptPass))
	rootDir := filepath.Join(dir, "rudder")
	for _, k := range uploadname.Kinds {
		if err := os.MkdirAll(filepath.Join(rootDir, k.RootSubdir()), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := boxSettings(baseSettings("root", filepath.Join(dir, "data"), nodes, api, admin), dir)
	s["agent_uploads.root_dir"] = fmt.Sprintf("%q", rootDir)
	p := startRelay(t, "root", writeConfig(t, dir, "root.yaml", s), api, admin)

	c := newClient(30 * time.Second)
	now := time.Now()
	gz, sign := inventoryNames(now, node)
	upd, _ := inventoryNames(now.Add(time.Minute), node)
	sent := []sentUpload{
		{"inventories", gz, initialUser, initialPass, content(11, 2<<20)},
		{"inventories", sign, initialUser, initialPass, content(12, 3<<10)},
		{"inventory-updates", upd, bcryptUser, bcryptPass, content(13, 1<<20)},
		{"reports", reportName(now, node), bcryptUser, bcryptPass, content(14, 3<<20)},
	}
	// While the uploads go on, a watcher reads every file that appears under its final name:
	// it must be whole from the moment it is there.
	stop := make(chan struct{})
	torn := make(chan string, 16)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			for _, u := range sent {
				k, _ := uploadname.ParseKind(u.kind)
				b, err := os.ReadFile(filepath.Join(rootDir, k.RootSubdir(), u.name))
				if err == nil && sha256Hex(b) != sha256Hex(u.body) {
					select {
					case torn <- fmt.Sprintf("%s: %d bytes of %d", u.name, len(b), len(u.body)):
					default:
					}
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	for _, u := range sent {
		if code, b, err := pacedAgentPut(c, p.api+"/"+u.kind+"/"+u.name, u.user, u.pass, u.body, 256<<10, 20*time.Millisecond); err != nil || code != http.StatusCreated {
			t.Fatalf("PUT /%s/%s at the root: %d %q %v, want 201", u.kind, u.name, code, b, err)
		}
	}
	close(stop)
	<-watched
	close(torn)
	for msg := range torn {
		t.Errorf("a partial file under its final name: %s", msg)
	}
	for _, k := range uploadname.Kinds {
		var want []string
		for _, u := range sent {
			if u.kind == k.Dir() {
				want = append(want, u.name)
			}
		}
		entries, err := os.ReadDir(filepath.Join(rootDir, k.RootSubdir()))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		slices.Sort(want)
		if strings.Join(names, " ") != strings.Join(want, " ") {
			t.Errorf("%s holds %v, want exactly %v", k.RootSubdir(), names, want)
		}
		for _, u := range sent {
			if u.kind != k.Dir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(rootDir, k.RootSubdir(), u.name))
			if err != nil || sha256Hex(b) != sha256Hex(u.body) {
				t.Errorf("%s/%s: %d bytes, %v: not what was sent", k.RootSubdir(), u.name, len(b), err)
			}
		}
	}

	// The same root without root_dir: nowhere to hand uploads to.
	p.stop(t)
	delete(s, "agent_uploads.root_dir")
	p = startRelay(t, "root", writeConfig(t, dir, "root-no-dir.yaml", s), api, admin)
	for _, u := range sent {
		if code, _, b, err := agentPut(c, p.api+"/"+u.kind+"/other-"+u.name, u.user, u.pass, u.body[:1024], false); err != nil || code != http.StatusNotFound {
			t.Errorf("PUT /%s/other-%s at a root without root_dir: %d %q %v, want 404", u.kind, u.name, code, b, err)
		}
	}
}
