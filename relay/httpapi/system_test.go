package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fixedSystem is a daemon whose status and info do not move, so that the answers can be
// compared byte for byte.
type fixedSystem struct {
	code      int
	reloadErr error
	reloads   int
}

func (f *fixedSystem) Status() (Status, int) {
	st := Status{Status: "ok", Version: "1.2.3", NodeID: "relay1", Role: "relay", UptimeSec: 42,
		NodeMap: NodeMapStatus{Nodes: 3, LoadedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Digest: "abc", Kept: true},
		Files:   7, QueueDepth: 1, StoreBytes: 4096}
	if f.code != http.StatusOK {
		st.Status, st.StatusReason = "draining", "the relay is stopping"
	}
	return st, f.code
}

func (f *fixedSystem) Info() map[string]any {
	return map[string]any{"name": "keel-relay", "version": "1.2.3", "node_id": "relay1", "api_versions": []int{1}}
}

func (f *fixedSystem) Reload() error { f.reloads++; return f.reloadErr }
func (f *fixedSystem) Nodes() int    { return 3 }

func (f *fixedSystem) Backup(io.Writer) error { return errors.New("no backup here") }

// serveSystem serves the relay API's and the admin listener's routers over sys on loopback.
func serveSystem(t *testing.T, sys System) (api, admin string) {
	t.Helper()
	a := testAPI()
	a.opts.System = sys
	loopback := func() *Lists { return &Lists{} } // nil lists: loopback only
	a.opts.Lists = loopback
	s1 := httptest.NewServer(a.Handler())
	s2 := httptest.NewServer(a.AdminHandler())
	t.Cleanup(s1.Close)
	t.Cleanup(s2.Close)
	return s1.URL, s2.URL
}

func call(t *testing.T, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", name, got, want)
	}
}

// TestSystemAnswersGolden: the system endpoints of the relay API listener answer in relayd's
// envelope, byte for byte; the admin listener keeps Keel's bare documents.
func TestSystemAnswersGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, method, path string
		sys                *fixedSystem
		admin              bool
		code               int
		file               string
	}{
		{"status", http.MethodGet, "/rudder/relay-api/1/system/status", &fixedSystem{code: 200}, false, 200, "status.golden"},
		{"status draining", http.MethodGet, "/rudder/relay-api/1/system/status", &fixedSystem{code: 503}, false, 503, "status-draining.golden"},
		{"status, old prefix", http.MethodGet, "/rudder/relay-api/system/status", &fixedSystem{code: 200}, false, 200, "status.golden"},
		{"info", http.MethodGet, "/rudder/relay-api/1/system/info", &fixedSystem{code: 200}, false, 200, "info.golden"},
		{"reload", http.MethodPost, "/rudder/relay-api/1/system/reload", &fixedSystem{code: 200}, false, 200, "reload.golden"},
		{"reload, old prefix", http.MethodPost, "/rudder/relay-api/system/reload", &fixedSystem{code: 200}, false, 200, "reload.golden"},
		{"reload fails", http.MethodPost, "/rudder/relay-api/1/system/reload", &fixedSystem{code: 200, reloadErr: errors.New(`config not reloaded: "x" <bad>`)}, false, 500, "reload-error.golden"},
		{"admin status", http.MethodGet, "/status", &fixedSystem{code: 200}, true, 200, "admin-status.golden"},
		{"admin reload", http.MethodPost, "/reload", &fixedSystem{code: 200}, true, 200, "admin-reload.golden"},
		{"admin reload fails", http.MethodPost, "/reload", &fixedSystem{code: 200, reloadErr: errors.New("node map: bad")}, true, 422, "admin-reload-error.golden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api, admin := serveSystem(t, tc.sys)
			base := api
			if tc.admin {
				base = admin
			}
			resp, body := call(t, tc.method, base+tc.path)
			if resp.StatusCode != tc.code || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %q %s, want %d application/json", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.code)
			}
			golden(t, tc.file, body)
			if tc.method == http.MethodPost && tc.sys.reloads != 1 {
				t.Errorf("%d reloads, want 1", tc.sys.reloads)
			}
		})
	}
}

// TestReloadExactBytes: what `rudder relay reload` compares, spelled out here rather than
// only in a golden file.
func TestReloadExactBytes(t *testing.T) {
	t.Parallel()
	api, _ := serveSystem(t, &fixedSystem{code: 200})
	resp, body := call(t, http.MethodPost, api+"/rudder/relay-api/1/system/reload")
	if resp.StatusCode != 200 || string(body) != `{"result":"success","action":"reloadConfiguration"}` {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
	}
}

// TestDecodeStatus reads the envelope back and refuses what is not a status answer.
func TestDecodeStatus(t *testing.T) {
	t.Parallel()
	api, _ := serveSystem(t, &fixedSystem{code: 200})
	_, body := call(t, http.MethodGet, api+"/rudder/relay-api/1/system/status")
	st, err := DecodeStatus(body)
	if err != nil || st.NodeID != "relay1" || st.NodeMap.Nodes != 3 || st.Status != "ok" {
		t.Fatalf("DecodeStatus: %+v %v", st, err)
	}
	for _, bad := range []string{
		``, `{`, `[]`, `{"data":{},"result":"error","action":"getStatus"}`,
		`{"data":{},"result":"success","action":"getSystemInfo"}`, `{"status":"ok"}`,
		`{"data":"x","result":"success","action":"getStatus"}`,
	} {
		if _, err := DecodeStatus([]byte(bad)); err == nil {
			t.Errorf("DecodeStatus(%q): no error", bad)
		}
	}
}

func FuzzDecodeStatus(f *testing.F) {
	f.Add([]byte(`{"data":{"status":"ok"},"result":"success","action":"getStatus"}`))
	f.Add([]byte(`{"result":"error","action":"reloadConfiguration","errorDetails":"x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := DecodeStatus(b); err == nil && !json.Valid(b) {
			t.Fatalf("DecodeStatus(%q) accepted a body that is not JSON", b)
		}
	})
}
