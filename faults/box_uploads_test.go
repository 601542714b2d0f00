package faults

import (
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// sentUpload is one upload an agent-style client sent and the relay acknowledged.
type sentUpload struct {
	kind, name string
	user, pass string // the agent's credentials
	body       []byte
}

// TestBoxUploadsDeliveredAfterKill: agents upload inventories (both files, in either order),
// inventory updates and reports to a relay whose upstream is down; the relay is killed with
// SIGKILL, restarted, and the upstream comes up (answering 503 at first). Every acknowledged
// upload arrives exactly once with its name and (last) bytes, with the Basic credentials of
// upstream_auth for its kind, in the order of arrival per kind; the relay's self-test file
// uuid.hive and a report of a node outside the node map never arrive, and the latter is
// listed as failed.
func TestBoxUploadsDeliveredAfterKill(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	relayID := "relay1"
	nodeA, nodeB, stranger := nodeUUID(), nodeUUID(), nodeUUID()
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, nodeMapOf(map[string]string{relayID: "root", nodeA: relayID, nodeB: relayID}))
	writeHtpasswd(t, dir, "htpasswd-webdav-initial", initialUser+":"+initialAPR1)
	writeHtpasswd(t, dir, "htpasswd-webdav",
		bcryptUser+":"+bcryptHash(t, bcryptPass), shaUser+":"+shaHash(shaPass), aprUser+":"+aprHash)
	writeFile(t, dir, "upstream-password", []byte("upstream-main\n"))
	writeFile(t, dir, "upstream-default-password", []byte("upstream-initial\n"))

	up := newRecorder(t, "")
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := boxSettings(baseSettings(relayID, filepath.Join(dir, "data"), nodes, api, admin), dir)
	s["role"] = "relay"
	s["upstream"] = fmt.Sprintf("%q", up.URL())
	s["upstream_auth.user"] = "rudder"
	s["upstream_auth.password_file"] = fmt.Sprintf("%q", filepath.Join(dir, "upstream-password"))
	s["upstream_auth.default_password_file"] = fmt.Sprintf("%q", filepath.Join(dir, "upstream-default-password"))
	cfg := writeConfig(t, dir, "relay.yaml", s)
	p := startRelay(t, "relay", cfg, api, admin)

	c := newClient(30 * time.Second)
	now := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	gzA, signA := inventoryNames(now, nodeA)
	gzB, signB := inventoryNames(now, nodeB)
	var order []sentUpload // acknowledged uploads, a re-sent name moved to the end
	send := func(u sentUpload, want int, expectContinue bool) {
		t.Helper()
		code, hdr, body, err := agentPut(c, p.api+"/"+u.kind+"/"+u.name, u.user, u.pass, u.body, expectContinue)
		if err != nil || code != want {
			t.Fatalf("PUT /%s/%s: %d %q %v, want %d", u.kind, u.name, code, body, err, want)
		}
		if want == http.StatusCreated && hdr.Get("Location") == "" {
			t.Errorf("PUT /%s/%s: 201 without Location", u.kind, u.name)
		}
		for i, o := range order {
			if o.kind == u.kind && o.name == u.name {
				order = append(order[:i], order[i+1:]...)
				break
			}
		}
		order = append(order, u)
	}
	body := func(seed uint64) []byte { return content(seed, 2<<10+int(seed%7)<<10) }
	// Node A: the .gz first; node B: the .sign first (no order is guaranteed).
	send(sentUpload{"inventories", gzA, initialUser, initialPass, body(1)}, http.StatusCreated, false)
	send(sentUpload{"inventories", signB, initialUser, initialPass, body(2)}, http.StatusCreated, true)
	send(sentUpload{"inventories", signA, initialUser, initialPass, body(3)}, http.StatusCreated, false)
	send(sentUpload{"inventories", gzB, initialUser, initialPass, body(4)}, http.StatusCreated, false)
	updA, _ := inventoryNames(now.Add(time.Hour), nodeA)
	send(sentUpload{"inventory-updates", updA, bcryptUser, bcryptPass, body(5)}, http.StatusCreated, false)
	updB, _ := inventoryNames(now.Add(time.Hour), nodeB)
	send(sentUpload{"inventory-updates", updB, shaUser, shaPass, body(6)}, http.StatusCreated, false)
	for i := range 4 {
		send(sentUpload{"reports", reportName(now.Add(time.Duration(i)*5*time.Minute), nodeA), bcryptUser, bcryptPass, body(10 + uint64(i))}, http.StatusCreated, false)
		send(sentUpload{"reports", reportName(now.Add(time.Duration(i)*5*time.Minute), nodeB), aprUser, aprPass, body(20 + uint64(i))}, http.StatusCreated, i == 0)
	}
	// Overwrites answer 204: a re-sent report and a re-sent inventory signature, new bytes.
	send(sentUpload{"reports", reportName(now, nodeA), shaUser, shaPass, body(30)}, http.StatusNoContent, false)
	send(sentUpload{"inventories", signA, initialUser, initialPass, body(31)}, http.StatusNoContent, false)
	// Accepted, never forwarded.
	unknownReport := reportName(now, stranger)
	hive := sentUpload{"inventories", "uuid.hive", initialUser, initialPass, []byte(relayID + "\n")}
	for _, u := range []sentUpload{{"reports", unknownReport, bcryptUser, bcryptPass, body(40)}, hive} {
		if code, _, b, err := agentPut(c, p.api+"/"+u.kind+"/"+u.name, u.user, u.pass, u.body, false); err != nil || code != http.StatusCreated {
			t.Fatalf("PUT /%s/%s: %d %q %v, want 201", u.kind, u.name, code, b, err)
		}
	}
	// Refusals on the way: wrong password, no credentials, the main credentials on
	// /inventories/, another method.
	for _, r := range []struct {
		path, user, pass string
	}{
		{"/reports/" + reportName(now.Add(time.Hour), nodeA), bcryptUser, "wrong"},
		{"/reports/" + reportName(now.Add(time.Hour), nodeA), "", ""},
		{"/inventories/" + gzA, bcryptUser, bcryptPass},
		{"/inventory-updates/" + updA, initialUser, initialPass},
	} {
		code, hdr, b, err := agentPut(c, p.api+r.path, r.user, r.pass, []byte("x"), false)
		if err != nil || code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") != `Basic realm="WebDAV Storage"` {
			t.Errorf("PUT %s as %q: %d %v %q %v, want 401 with Basic realm=\"WebDAV Storage\"", r.path, r.user, code, hdr.Values("WWW-Authenticate"), b, err)
		}
	}
	for _, name := range []string{"..", ".", "a%2Fb", "%2E%2E", "a%00b"} {
		code, _, b, err := agentPut(c, p.api+"/reports/"+name, bcryptUser, bcryptPass, []byte("x"), false)
		if err != nil || code != http.StatusBadRequest {
			t.Errorf("PUT /reports/%s: %d %q %v, want 400", name, code, b, err)
		}
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete, "PROPFIND", "MKCOL"} {
		code, _, _, err := get(c, m, p.api+"/reports/"+reportName(now, nodeA), map[string]string{"Authorization": basic(bcryptUser, bcryptPass)})
		if err != nil || code != http.StatusForbidden {
			t.Errorf("%s /reports/<name>: %d %v, want 403", m, code, err)
		}
	}

	p.kill9(t)
	p = startRelay(t, "relay", cfg, api, admin)
	up.refuse.Store(5) // the upstream comes up in trouble: its first answers are 503
	up.up(t)

	want := map[string]sentUpload{}
	for _, u := range order {
		want[u.kind+"/"+u.name] = u
	}
	relaytest.Eventually(t, 60*time.Second, fmt.Sprintf("%d uploads delivered upstream", len(order)), func() bool {
		n := 0
		for _, r := range up.got() {
			if _, ok := want[r.Kind+"/"+r.Name]; ok {
				n++
			}
		}
		return n >= len(order)
	})
	time.Sleep(time.Second) // room for a duplicate or a forbidden delivery to show
	got := up.got()
	seen := map[string]int{}
	perKind := map[string][]string{}
	for _, r := range got {
		key := r.Kind + "/" + r.Name
		seen[key]++
		u, ok := want[key]
		if !ok {
			t.Errorf("delivered upstream, never to be: PUT %s", r.Path)
			continue
		}
		perKind[r.Kind] = append(perKind[r.Kind], r.Name)
		if r.Sum != sha256Hex(u.body) || r.Size != len(u.body) {
			t.Errorf("PUT %s upstream: %d bytes sha256 %s, want the last acknowledged %d bytes %s", r.Path, r.Size, r.Sum, len(u.body), sha256Hex(u.body))
		}
		wantPass := "upstream-main"
		if r.Kind == "inventories" {
			wantPass = "upstream-initial"
		}
		if r.User != "rudder" || r.Pass != wantPass {
			t.Errorf("PUT %s upstream as %q:%q, want rudder:%s", r.Path, r.User, r.Pass, wantPass)
		}
	}
	for key, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times, want once", key, n)
		}
	}
	for _, kind := range []string{"inventories", "inventory-updates", "reports"} {
		var wantOrder []string
		for _, u := range order {
			if u.kind == kind {
				wantOrder = append(wantOrder, u.name)
			}
		}
		if strings.Join(perKind[kind], " ") != strings.Join(wantOrder, " ") {
			t.Errorf("%s delivered in the order\n  %v\nwant the order of arrival\n  %v", kind, perKind[kind], wantOrder)
		}
	}

	// Counted under relayd's metric names (since the restart: every delivery came after it).
	metrics := metricsText(t, p)
	for _, m := range []struct {
		series string
		want   int
	}{
		{`rudder_relayd_inventories_total{status="forward_ok"}`, 6}, // 4 inventory files and 2 updates
		{`rudder_relayd_reports_total{status="forward_ok"}`, 8},
	} {
		if got, ok := metricValue(metrics, m.series); !ok || got != float64(m.want) {
			t.Errorf("%s = %v (present %v), want %d", m.series, got, ok, m.want)
		}
	}

	// The unknown node's report is kept aside as failed, and an operator can list it: through
	// the admin API and with `keel-relay uploads --failed`.
	relaytest.Eventually(t, 10*time.Second, "the unknown node's report listed as failed", func() bool {
		return strings.Contains(failedUploads(t, p), unknownReport)
	})
	out, err := exec.Command(relayBin, "uploads", "--failed", "--config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), unknownReport) {
		t.Errorf("keel-relay uploads --failed: %v\n%s\nwant %s listed", err, out, unknownReport)
	}
	for _, u := range append(order, hive) {
		if list := failedUploads(t, p); strings.Contains(list, u.name) {
			t.Errorf("%s listed as failed:\n%s", u.name, list)
		}
	}
}

// metricsText returns the relay's /metrics (admin listener).
func metricsText(t *testing.T, p *proc) string {
	t.Helper()
	code, body, err := do(newClient(10*time.Second), http.MethodGet, p.admin+"/metrics", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	return string(body)
}

// metricValue returns the value of series (name{labels}, as the exposition writes it) in a
// /metrics text.
func metricValue(text, series string) (float64, bool) {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// basic is an Authorization header value for HTTP Basic.
func basic(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

// nodeMapOf returns a node map (the bare-object shape) of node id → policy server; every node
// pins the same test key (the relay-box paths use no pin). A relay's map is its own subtree:
// itself (its policy server outside the map) and the nodes below it.
func nodeMapOf(parents map[string]string) []byte {
	var nodes []*relaytest.Node
	for _, id := range slices.Sorted(maps.Keys(parents)) {
		nodes = append(nodes, relaytest.NewNode(id, parents[id], 0))
	}
	return relaytest.NodeMap(nodes...)
}

// failedUploads returns the relay's list of failed agent uploads (admin GET
// /uploads?state=failed) as text: the tests look for names in it.
func failedUploads(t *testing.T, p *proc) string {
	t.Helper()
	code, body, err := do(newClient(10*time.Second), http.MethodGet, p.admin+"/uploads?state=failed", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET admin /uploads?state=failed: %d %s %v", code, body, err)
	}
	return string(body)
}
