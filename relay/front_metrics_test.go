package relay_test

import (
	"net/http"
	"os"
	"testing"

	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/relaytest"
)

// TestRelaydNodeGauges: rudder_relayd_managed_nodes_total counts the nodes whose policy server
// is this relay, rudder_relayd_sub_nodes_total every node below it (through sub-relays too),
// as relayd counts them, and both follow a reload of the node map.
func TestRelaydNodeGauges(t *testing.T) {
	t.Parallel()
	root := relaytest.NewNode("root", "root", 0)
	self := relaytest.NewNode("relay1", "root", 1) // the relay's own entry: not below itself
	n1 := relaytest.NewNode("n1", "relay1", 2)
	sub := relaytest.NewNode("sub", "relay1", 3)
	n2 := relaytest.NewNode("n2", "sub", 2)
	n3 := relaytest.NewNode("n3", "sub", 3)
	r := startRelay(t, "relay1", relaytest.NodeMap(self, n1, sub, n2, n3), func(c *config.Config) { c.NodesPollInterval = 0 })

	want := func(managed, sub float64) {
		t.Helper()
		m := metricsText(t, r)
		if got := metricValue(t, m, "rudder_relayd_managed_nodes_total"); got != managed {
			t.Errorf("rudder_relayd_managed_nodes_total = %v, want %v", got, managed)
		}
		if got := metricValue(t, m, "rudder_relayd_sub_nodes_total"); got != sub {
			t.Errorf("rudder_relayd_sub_nodes_total = %v, want %v", got, sub)
		}
	}
	want(2, 4) // n1 and sub; n1, sub, n2, n3

	n4 := relaytest.NewNode("n4", "relay1", 3)
	if err := os.WriteFile(r.Config.NodesFile, relaytest.NodeMap(self, n1, sub, n2, n4), 0o644); err != nil {
		t.Fatal(err)
	}
	if a := do(t, http.MethodPost, r.URL+"/rudder/relay-api/1/system/reload", nil, nil); a.code != http.StatusOK || string(a.body) != httpapi.ReloadSuccess {
		t.Fatalf("reload: %d %s", a.code, a.body)
	}
	want(3, 4) // n1, sub, n4; n1, sub, n2, n4

	// At the root, the root is its own policy server: relayd counts it as managed.
	rr := startRelay(t, "root", relaytest.NodeMap(root, self, n1), nil)
	m := metricsText(t, rr)
	if got := metricValue(t, m, "rudder_relayd_managed_nodes_total"); got != 2 {
		t.Errorf("at the root: rudder_relayd_managed_nodes_total = %v, want 2 (root, relay1)", got)
	}
	if got := metricValue(t, m, "rudder_relayd_sub_nodes_total"); got != 3 {
		t.Errorf("at the root: rudder_relayd_sub_nodes_total = %v, want 3", got)
	}
}
