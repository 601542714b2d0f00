package relay_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/relaytest"
)

// TestNodeMapReload writes bad node maps over a good one and then a good change, and has the
// relay reload through each of its three ways: the API, the admin listener and the file
// watcher. A bad map never replaces the good one; a good change is picked up.
func TestNodeMapReload(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	n5 := relaytest.NewNode("n5", "root", 2)
	good := relaytest.NodeMap(root, n1, src)
	changed := relaytest.NodeMap(root, n1, src, n5)

	bad := []struct {
		name, data, inError string
	}{
		{"not JSON", `{"n1": {"hostname": "n1", `, "invalid JSON: unexpected end of JSON input"},
		{"cycle", `{"root": {"hostname": "r", "policy-server": "root"},
			"n1": {"hostname": "a", "policy-server": "n5"}, "n5": {"hostname": "b", "policy-server": "n1"}}`, "cycle in policy servers: n1, n5"},
		{"dangling parent", `{"n5": {"hostname": "b", "policy-server": "nowhere"}}`, `policy-server not in the map: n5 -> "nowhere"`},
		{"no hostname", `{"n5": {"policy-server": "root"}}`, "missing hostname: n5"},
		{"not an object", `["n5"]`, "cannot unmarshal array"},
		{"null", `null`, "top level is null"},
	}

	ways := []struct {
		name    string
		watcher bool
		reload  func(t *testing.T, r *relaytest.Relay) answer // nil: wait for the watcher
	}{
		{"api", false, func(t *testing.T, r *relaytest.Relay) answer {
			return do(t, http.MethodPost, r.URL+"/rudder/relay-api/1/system/reload", nil, nil)
		}},
		{"api, unversioned prefix", false, func(t *testing.T, r *relaytest.Relay) answer {
			return do(t, http.MethodPost, r.URL+"/rudder/relay-api/system/reload", nil, nil)
		}},
		{"admin", false, func(t *testing.T, r *relaytest.Relay) answer {
			return do(t, http.MethodPost, r.Admin+"/reload", nil, nil)
		}},
		{"watcher", true, nil},
	}
	for _, way := range ways {
		t.Run(way.name, func(t *testing.T) {
			t.Parallel()
			r := startRelay(t, "root", good, func(c *config.Config) {
				if !way.watcher {
					c.NodesPollInterval = 0
				}
			})
			before := status(t, r)
			if before.NodeMap.Nodes != 3 || before.NodeMap.LastError != "" {
				t.Fatalf("at start: node_map %+v", before.NodeMap)
			}
			putTo := func(target, id string) int {
				return put(t, r, "/shared-files/"+target+"/src/"+id+"?ttl=1h", relaytest.SignedBody(t, src, []byte(id), "")).code
			}

			for _, b := range bad {
				if err := os.WriteFile(r.Config.NodesFile, []byte(b.data), 0o644); err != nil {
					t.Fatal(err)
				}
				if way.reload != nil {
					a := way.reload(t, r)
					if way.name == "admin" { // Keel's own answer
						var got struct {
							Reloaded bool   `json:"reloaded"`
							Error    string `json:"error"`
							Nodes    int    `json:"nodes"`
						}
						if err := json.Unmarshal(a.body, &got); err != nil || a.code != http.StatusUnprocessableEntity || got.Reloaded || got.Nodes != 3 ||
							!strings.Contains(got.Error, b.inError) {
							t.Errorf("%s: reload answered %d %s, want 422, reloaded false, 3 nodes, an error saying %q", b.name, a.code, a.body, b.inError)
						}
					} else { // relayd's answer
						var got httpapi.ReloadError
						if err := json.Unmarshal(a.body, &got); err != nil || a.code != http.StatusInternalServerError || got.Result != "error" ||
							got.Action != "reloadConfiguration" || !strings.Contains(got.ErrorDetails, b.inError) {
							t.Errorf("%s: reload answered %d %s, want 500, result error, errorDetails saying %q", b.name, a.code, a.body, b.inError)
						}
					}
				} else {
					waitFor(t, "the watcher to refuse the "+b.name+" map", 5*time.Second, func() bool {
						return strings.Contains(status(t, r).NodeMap.LastError, b.inError)
					})
				}
				st := status(t, r)
				if st.NodeMap.Nodes != 3 || st.NodeMap.Digest != before.NodeMap.Digest || !strings.Contains(st.NodeMap.LastError, b.inError) {
					t.Errorf("%s: node_map %+v, want the good map (3 nodes, digest %s) and last_error saying %q",
						b.name, st.NodeMap, before.NodeMap.Digest, b.inError)
				}
				if code := putTo("n1", "during-"+strings.ReplaceAll(b.name, " ", "-")); code != http.StatusOK {
					t.Errorf("%s: PUT for n1 with the bad map on disk: %d, want 200", b.name, code)
				}
				if code := putTo("n5", "n5-early"); code != http.StatusNotFound {
					t.Errorf("%s: PUT for n5 (only in the bad map): %d, want 404", b.name, code)
				}
			}

			if err := os.WriteFile(r.Config.NodesFile, changed, 0o644); err != nil {
				t.Fatal(err)
			}
			if way.reload != nil {
				a := way.reload(t, r)
				if way.name == "admin" {
					if a.code != http.StatusOK || !bytes.Contains(a.body, []byte(`"reloaded": true`)) || !bytes.Contains(a.body, []byte(`"nodes": 4`)) {
						t.Errorf("reload of a good change: %d %s, want 200, reloaded, 4 nodes", a.code, a.body)
					}
				} else if a.code != http.StatusOK || string(a.body) != httpapi.ReloadSuccess {
					t.Errorf("reload of a good change: %d %q, want 200 %q", a.code, a.body, httpapi.ReloadSuccess)
				}
			} else {
				waitFor(t, "the watcher to load the good change", 5*time.Second, func() bool { return status(t, r).NodeMap.Nodes == 4 })
			}
			st := status(t, r)
			if st.NodeMap.Nodes != 4 || st.NodeMap.LastError != "" || st.NodeMap.Digest != sha256hex(changed) || !st.NodeMap.LoadedAt.After(before.NodeMap.LoadedAt) {
				t.Errorf("after the good change: node_map %+v, want 4 nodes, no error, digest %s, loaded after %s",
					st.NodeMap, sha256hex(changed), before.NodeMap.LoadedAt)
			}
			if code := putTo("n5", "n5"); code != http.StatusOK {
				t.Errorf("PUT for n5 after the good change: %d, want 200", code)
			}
			m := metricsText(t, r)
			if got := metricValue(t, m, `keel_node_map_loads_total{result="error"}`); got != float64(len(bad)) {
				t.Errorf(`keel_node_map_loads_total{result="error"} = %v, want %d`, got, len(bad))
			}
			if got := metricValue(t, m, `keel_node_map_loads_total{result="ok"}`); got != 2 {
				t.Errorf(`keel_node_map_loads_total{result="ok"} = %v, want 2`, got)
			}
		})
	}
}

// TestReloadPeers checks who may reach which route. A test machine has no non-loopback address
// to connect from, so the requests go to the real server's handlers in process, with the peer
// address set by hand.
func TestReloadPeers(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	r := startRelay(t, "root", relaytest.NodeMap(root, n1, src), func(c *config.Config) {
		c.HTTP.PolicyServerNetworks = []string{"192.0.2.0/24"}
	})
	api, admin := r.APIHandler(), r.AdminHandler()
	const (
		outsider     = "198.51.100.7:40000"
		policyServer = "192.0.2.10:40000"
	)
	tests := []struct {
		name    string
		handler http.Handler
		method  string
		path    string
		peer    string
		code    int
	}{
		{"api reload from an outsider", api, http.MethodPost, "/rudder/relay-api/1/system/reload", outsider, http.StatusForbidden},
		{"api reload from an outsider, unversioned", api, http.MethodPost, "/rudder/relay-api/system/reload", outsider, http.StatusForbidden},
		{"api reload from an outsider over IPv6", api, http.MethodPost, "/rudder/relay-api/1/system/reload", "[2001:db8::1]:40000", http.StatusForbidden},
		{"api reload from an unparsable peer", api, http.MethodPost, "/rudder/relay-api/1/system/reload", "bogus", http.StatusForbidden},
		{"api reload from the policy server", api, http.MethodPost, "/rudder/relay-api/1/system/reload", policyServer, http.StatusOK},
		{"api reload from the policy server, IPv4-mapped", api, http.MethodPost, "/rudder/relay-api/1/system/reload", "[::ffff:192.0.2.10]:40000", http.StatusOK},
		{"api reload from 127.0.0.1", api, http.MethodPost, "/rudder/relay-api/1/system/reload", "127.0.0.1:40000", http.StatusOK},
		{"api reload from 127.9.9.9", api, http.MethodPost, "/rudder/relay-api/1/system/reload", "127.9.9.9:40000", http.StatusOK},
		{"api reload from ::1", api, http.MethodPost, "/rudder/relay-api/1/system/reload", "[::1]:40000", http.StatusOK},
		{"admin reload from the policy server", admin, http.MethodPost, "/reload", policyServer, http.StatusForbidden},
		{"admin reload from loopback", admin, http.MethodPost, "/reload", "127.0.0.1:40000", http.StatusOK},
		{"admin status from an outsider", admin, http.MethodGet, "/status", outsider, http.StatusForbidden},
		{"admin backup from an outsider", admin, http.MethodGet, "/backup", outsider, http.StatusForbidden},
		{"shared files from the policy server", api, http.MethodPut, "/shared-files/n1/src/f?ttl=1h", policyServer, http.StatusForbidden},
		{"HEAD from an outsider", api, http.MethodHead, "/shared-files/n1/src/f?hash=00", outsider, http.StatusForbidden},
		{"status from an outsider", api, http.MethodGet, "/rudder/relay-api/1/system/status", outsider, http.StatusForbidden},
		{"status from loopback", api, http.MethodGet, "/rudder/relay-api/1/system/status", "127.0.0.1:40000", http.StatusOK},
	}
	for _, tc := range tests {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.RemoteAddr = tc.peer
		w := httptest.NewRecorder()
		tc.handler.ServeHTTP(w, req)
		if w.Code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.code)
		}
		if w.Code == http.StatusForbidden {
			if w.Header().Get("Content-Length") == "" && tc.method == http.MethodHead {
				t.Errorf("%s: HEAD refused without Content-Length", tc.name)
			}
			if tc.method != http.MethodHead && !strings.Contains(w.Body.String(), "forbidden: "+tc.peer) {
				t.Errorf("%s: body %q does not name the peer", tc.name, w.Body)
			}
		}
	}
	m := metricsText(t, r)
	for series, want := range map[string]float64{
		`keel_http_access_refused_total{route="system/reload"}`: 4,
		`keel_http_access_refused_total{route="admin/reload"}`:  1,
		`keel_http_access_refused_total{route="shared-files"}`:  2,
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// TestRestartKeepsLastGoodNodeMap restarts a relay whose nodes file broke (or vanished) while it
// was down: it routes with the last good map kept in its store.
func TestRestartKeepsLastGoodNodeMap(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	n1 := relaytest.NewNode("n1", "root", 1)
	src := relaytest.NewNode("src", "root", 3)
	good := relaytest.NodeMap(root, n1, src)
	r := startRelay(t, "root", good, nil)
	if a := put(t, r, "/shared-files/n1/src/first?ttl=1h", relaytest.SignedBody(t, src, []byte("first"), "")); a.code != http.StatusOK {
		t.Fatalf("PUT: %d %s", a.code, a.body)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	cfg := r.Config

	tests := []struct {
		name    string
		break_  func() error
		inError string
	}{
		{"broken file", func() error { return os.WriteFile(cfg.NodesFile, []byte("{not json"), 0o644) }, "node map"},
		{"missing file", func() error { return os.Remove(cfg.NodesFile) }, "no such file"},
	}
	for i, tc := range tests {
		if err := tc.break_(); err != nil {
			t.Fatal(err)
		}
		r := relaytest.Start(t, cfg)
		st := status(t, r)
		if st.NodeMap.Nodes != 3 || st.NodeMap.Digest != sha256hex(good) || !strings.Contains(st.NodeMap.LastError, tc.inError) {
			t.Errorf("%s: node_map %+v, want the kept map (3 nodes, digest %s) and last_error saying %q", tc.name, st.NodeMap, sha256hex(good), tc.inError)
		}
		id := "after-restart-" + string(rune('a'+i))
		if a := put(t, r, "/shared-files/n1/src/"+id+"?ttl=1h", relaytest.SignedBody(t, src, []byte(id), "")); a.code != http.StatusOK {
			t.Errorf("%s: PUT for n1 after the restart: %d %s, want 200", tc.name, a.code, a.body)
		}
		if a := head(t, r, "/shared-files/n1/src/first?hash="+sha256hex([]byte("first"))); a.code != http.StatusOK {
			t.Errorf("%s: HEAD of the file stored before the restart: %d, want 200", tc.name, a.code)
		}
		if a := put(t, r, "/shared-files/ghost/src/x?ttl=1h", relaytest.SignedBody(t, src, []byte("x"), "")); a.code != http.StatusNotFound {
			t.Errorf("%s: PUT for an unknown node: %d, want 404", tc.name, a.code)
		}
		if !strings.Contains(r.LogText(), "using the last good node map kept in the store") {
			t.Errorf("%s: the relay did not log that it uses the kept map", tc.name)
		}
		if err := r.Stop(); err != nil {
			t.Fatalf("%s: Stop: %v", tc.name, err)
		}
	}
}
