package faults

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// TestBoxRetentionAndBound: uploads waiting for a down upstream are bounded by
// agent_uploads.max_waiting (beyond it: 507, nothing kept), and expire after
// agent_uploads.retention, counted, also across a restart: once the upstream is up, an
// expired upload never arrives, while one received after the expiry does.
func TestBoxRetentionAndBound(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	node := nodeUUID()
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, nodeMapOf(map[string]string{"relay1": "root", node: "relay1"}))
	writeHtpasswd(t, dir, "htpasswd-webdav", shaUser+":"+shaHash(shaPass))
	up := newRecorder(t, "")
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := boxSettings(baseSettings("relay1", filepath.Join(dir, "data"), nodes, api, admin), dir)
	s["role"] = "relay"
	s["upstream"] = fmt.Sprintf("%q", up.URL())
	s["agent_uploads.retention"] = "2s"
	s["agent_uploads.max_waiting"] = "3"
	cfg := writeConfig(t, dir, "relay.yaml", s)
	p := startRelay(t, "relay", cfg, api, admin)
	c := newClient(30 * time.Second)

	at := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	put := func(i int, want int) string {
		t.Helper()
		name := reportName(at.Add(time.Duration(i)*time.Minute), node)
		if code, _, b, err := agentPut(c, p.api+"/reports/"+name, shaUser, shaPass, content(uint64(i), 2<<10), false); err != nil || code != want {
			t.Fatalf("PUT /reports/%s: %d %q %v, want %d", name, code, b, err, want)
		}
		return name
	}
	for i := range 3 {
		put(i, http.StatusCreated)
	}
	put(3, http.StatusInsufficientStorage) // max_waiting reached
	put(0, http.StatusNoContent)           // a replacement takes no more room

	time.Sleep(2500 * time.Millisecond) // beyond the retention
	p.stop(t)
	p = startRelay(t, "relay", cfg, api, admin)
	relaytest.Eventually(t, 10*time.Second, "3 reports expired", func() bool {
		v, _ := metricValue(metricsText(t, p), `keel_agent_uploads_expired_total{kind="reports"}`)
		return v == 3
	})
	fresh := put(4, http.StatusCreated) // room again
	up.up(t)
	relaytest.Eventually(t, 30*time.Second, "the fresh report delivered", func() bool { return len(up.got()) > 0 })
	time.Sleep(500 * time.Millisecond)
	for _, r := range up.got() {
		if r.Name != fresh {
			t.Errorf("PUT %s upstream: it had expired", r.Path)
		}
	}
}
