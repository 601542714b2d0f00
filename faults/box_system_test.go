package faults

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// TestBoxSystemEndpoints: the system endpoints as Rudder's tools read them. `rudder relay
// reload` compares the answer of system/reload byte for byte; system/status and system/info
// answer in relayd's envelope with Keel's fields inside data.
func TestBoxSystemEndpoints(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, nodeMapOf(map[string]string{"root": "root"}))
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := boxSettings(baseSettings("root", filepath.Join(dir, "data"), nodes, api, admin), dir)
	p := startRelay(t, "relay", writeConfig(t, dir, "relay.yaml", s), api, admin)
	c := newClient(10 * time.Second)

	for _, prefix := range []string{"/rudder/relay-api/1", "/rudder/relay-api"} {
		code, body, err := do(c, http.MethodPost, p.api+prefix+"/system/reload", nil)
		if err != nil || code != http.StatusOK || string(body) != `{"result":"success","action":"reloadConfiguration"}` {
			t.Errorf("POST %s/system/reload: %d %q %v, want exactly {\"result\":\"success\",\"action\":\"reloadConfiguration\"}", prefix, code, body, err)
		}
	}
	for _, e := range []struct{ path, action string }{
		{"/rudder/relay-api/1/system/status", "getStatus"},
		{"/rudder/relay-api/1/system/info", "getSystemInfo"},
	} {
		code, body, err := do(c, http.MethodGet, p.api+e.path, nil)
		if err != nil || code != http.StatusOK {
			t.Errorf("GET %s: %d %s %v", e.path, code, body, err)
			continue
		}
		var env struct {
			Data   map[string]any `json:"data"`
			Result string         `json:"result"`
			Action string         `json:"action"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.Result != "success" || env.Action != e.action || len(env.Data) == 0 {
			t.Errorf("GET %s: %s (%v), want {\"data\": {...}, \"result\": \"success\", \"action\": %q}", e.path, body, err, e.action)
		}
	}
	if st := status(t, p.api); st.NodeID != "root" || st.Status != "ok" {
		t.Errorf("system/status data: %+v, want node_id root, status ok", st)
	}
}
