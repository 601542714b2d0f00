package inspect

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/relay/nodemap"
	"github.com/keel-relay/keel/storage"
)

const pin = "sha256//JHtaOHSBl/0IYhhhJOW08PUr6PLMYENPSHifVf+hxNY="

// testMap is relay1 ← {n1, sub1 ← n9}; for the root, root ← {relay1, other} too (a
// relay's map holds only the nodes below it).
func testMap(t *testing.T, self string) *nodemap.Map {
	t.Helper()
	rootEntry := ""
	if self == "root" {
		rootEntry = `"root": {"hostname": "root.test", "policy-server": "root", "key-hash": "` + pin + `"},
	  "relay1": {"hostname": "relay1.test", "policy-server": "root", "key-hash": "` + pin + `"},
	  "other":  {"hostname": "other.test", "policy-server": "root", "key-hash": "` + pin + `"},`
	} else {
		rootEntry = `"relay1": {"hostname": "relay1.test", "policy-server": "root", "key-hash": "` + pin + `"},`
	}
	m, err := nodemap.Parse([]byte(`{`+rootEntry+`
	  "n1":     {"hostname": "n1.test", "policy-server": "relay1", "key-hash": "`+pin+`"},
	  "sub1":   {"hostname": "sub1.test", "policy-server": "relay1", "key-hash": "sha256//short"},
	  "n9":     {"hostname": "n9.test", "policy-server": "sub1"}
	}`), self)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestExplain: every destination a PUT can have, and why a source is refused.
func TestExplain(t *testing.T) {
	relay1, root := testMap(t, "relay1"), testMap(t, "root")
	for _, tc := range []struct {
		name     string
		m        *nodemap.Map
		root     bool
		id       string
		dest     string
		via      string
		why      string
		accepted bool
		source   string
	}{
		{"attached", relay1, false, "n1", DestMine, "", "its policy server is this relay (relay1)", true, "accepted when signed"},
		{"below a sub-relay", relay1, false, "n9", DestSubRelay, "sub1", "hangs below sub1", false, "no key-hash"},
		{"sub-relay itself", relay1, false, "sub1", DestMine, "", "policy server is this relay", false, "unusable"},
		{"root: attached", root, true, "other", DestMine, "", "policy server is this relay (root)", true, "accepted"},
		{"not in the map", relay1, false, "zz", DestUpstream, "", "not in this relay's node map: files for it are queued and forwarded to the upstream (https://up)", false, "not in the node map"},
		{"the relay itself", relay1, false, "relay1", DestUpstream, "", "it is this relay itself", true, "accepted"},
		{"root: unknown", root, true, "zz", DestRefused, "", "refused with 404", false, "not in the node map"},
		{"root: itself", root, true, "root", DestMine, "", "root server itself", true, "accepted"},
		{"root: deep", root, true, "n9", DestSubRelay, "relay1", "hangs below relay1", false, "no key-hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Explain(tc.m, tc.root, "https://up", tc.id)
			if r.Destination != tc.dest || r.Via != tc.via || !strings.Contains(r.Why, tc.why) ||
				r.SourceAccepted != tc.accepted || !strings.Contains(r.SourceWhy, tc.source) {
				t.Errorf("Explain(%s) = %+v", tc.id, r)
			}
		})
	}
	if r := Explain(relay1, false, "", "n9"); strings.Join(r.Chain, ",") != "sub1,relay1" || r.Parent != "sub1" {
		t.Errorf("chain of n9 = %v (parent %s)", r.Chain, r.Parent)
	}
	nodes := ListNodes(relay1, "nodes.json", 2)
	if nodes.Total != 4 || len(nodes.Nodes) != 2 || nodes.Nodes[0].ID != "n1" || nodes.Nodes[1].Route != "below-sub-relay" || nodes.Nodes[1].Via != "sub1" {
		t.Errorf("ListNodes = %+v", nodes)
	}
}

// TestRoutesRefusals: the admin routes refuse bad parameters with 400 and unknown jobs with
// 404, served over loopback from a real store.
func TestRoutesRefusals(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := storage.DefaultOptions(t.TempDir())
	store, err := storage.Open(opts, log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m := testMap(t, "relay1")
	r := httprouter.New()
	for _, rt := range Routes(Options{Store: store, Nodes: func() *nodemap.Map { return m }, NodesSource: func() string { return "nodes.json" },
		Root: func() bool { return false }, Upstream: func() string { return "https://up" }, Log: log}) {
		r.Handle(rt.Method, rt.Path, rt.Handle)
	}
	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/files?limit=0", 400, "limit must be"},
		{"GET", "/files?limit=10001", 400, "limit must be"},
		{"GET", "/files?target=a/b", 400, "target"},
		{"GET", "/files?target=..", 400, "target"},
		{"GET", "/files?target=n1", 200, `"total": 0`},
		{"GET", "/queue?limit=-1", 400, "limit must be"},
		{"GET", "/queue?limit=0", 200, `"jobs": []`},
		{"POST", "/queue/abc/retry", 400, "bad job id"},
		{"POST", "/queue/0/drop", 400, "bad job id"},
		{"POST", "/queue/42/retry", 404, "no such job"},
		{"POST", "/queue/42/drop", 404, "no such job"},
		{"GET", "/nodes?limit=x", 400, "limit must be"},
		{"GET", "/nodes?limit=1", 200, `"total": 4`},
		{"GET", "/nodes/%20x/route", 400, "node id"},
		{"GET", "/nodes/n9/route", 200, `"destination": "sub-relay"`},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
	}
	// A job queued, listed, retried, dropped.
	u, err := store.NewUpload(3)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = u.Write([]byte("abc"))
	if err := store.Enqueue(u, storage.Job{File: storage.FileKey{Target: "zz", Source: "n1", ID: "f"}, Expires: time.Now().Add(time.Hour),
		Due: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var q Queue
	get(t, srv.URL+"/queue", &q)
	if q.Total != 1 || len(q.Jobs) != 1 || q.Jobs[0].NextHop != "upstream" || q.Jobs[0].File != "zz/n1/f" {
		t.Fatalf("queue = %+v", q)
	}
	for _, act := range []string{"retry", "drop"} {
		resp, err := http.Post(srv.URL+"/queue/"+q.Jobs[0].ID+"/"+act, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		var j Job
		err = json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || j.ID != q.Jobs[0].ID {
			t.Fatalf("%s: %d %+v %v", act, resp.StatusCode, j, err)
		}
		if act == "retry" && j.Due.After(time.Now()) {
			t.Errorf("retried job due at %v", j.Due)
		}
	}
	if store.JobCount() != 0 {
		t.Errorf("JobCount = %d after drop", store.JobCount())
	}
}

func get(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// TestParseLimit: the limits a listing takes, and those it refuses.
func TestParseLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		min  int
		want int
		ok   bool
	}{
		{"", 1, DefaultLimit, true}, {"1", 1, 1, true}, {"10000", 1, MaxLimit, true}, {"0", 0, 0, true},
		{"0", 1, 0, false}, {"10001", 1, 0, false}, {"-1", 0, 0, false}, {"1e3", 1, 0, false}, {" 5", 1, 0, false},
		{"5 ", 1, 0, false}, {"0x10", 1, 0, false}, {"99999999999999999999", 1, 0, false}, {"abc", 1, 0, false},
	} {
		got, err := parseLimit(tc.in, tc.min)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseLimit(%q, %d) = %d, %v", tc.in, tc.min, got, err)
		}
	}
}

// FuzzParseLimit: an accepted limit is always within bounds.
func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"", "0", "1", "10000", "10001", "-1", "+5", "007"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseLimit(s, 0)
		if err == nil && (n < 0 || n > MaxLimit) {
			t.Fatalf("parseLimit(%q) = %d", s, n)
		}
	})
}
