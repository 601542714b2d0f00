package delivery_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/relay/delivery"
)

func TestListHandler(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	for i := range 5 {
		keep(t, s, "reports", report(nodeA, i), []byte(strings.Repeat("r", i)))
	}
	keep(t, s, "inventories", "i.ocs", []byte("inv"))
	head, _, _ := s.NextAgentUpload("reports")
	if err := s.RetryAgentUpload(head, time.Now().Add(time.Minute), "the upstream answered 503"); err != nil {
		t.Fatal(err)
	}
	if err := s.FailAgentUpload(head, "unknown node "+nodeA); err != nil {
		t.Fatal(err)
	}
	r := httprouter.New()
	r.GET("/uploads", delivery.ListHandler(s, discard()))
	srv := httptest.NewServer(r)
	defer srv.Close()

	get := func(query string) (int, []delivery.Listed, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/uploads" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list []delivery.Listed
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
		return resp.StatusCode, list, resp.Header.Get("X-Total-Count")
	}
	names := func(list []delivery.Listed) string {
		var b strings.Builder
		for _, l := range list {
			fmt.Fprintf(&b, "%s/%s ", l.Kind, l.Name)
		}
		return strings.TrimSpace(b.String())
	}

	for _, tc := range []struct {
		query, want, total string
	}{
		{"", fmt.Sprintf("reports/%s reports/%s reports/%s reports/%s inventories/i.ocs", report(nodeA, 1), report(nodeA, 2), report(nodeA, 3), report(nodeA, 4)), "5"},
		{"?state=waiting&limit=2", fmt.Sprintf("reports/%s reports/%s", report(nodeA, 1), report(nodeA, 2)), "5"},
		{"?kind=inventories", "inventories/i.ocs", "1"},
		{"?state=failed", "reports/" + report(nodeA, 0), "1"},
		{"?state=failed&kind=inventories", "", "0"},
	} {
		code, list, total := get(tc.query)
		if code != http.StatusOK || names(list) != tc.want || total != tc.total {
			t.Errorf("%q: %d %q total %s; want %q total %s", tc.query, code, names(list), total, tc.want, tc.total)
		}
	}
	_, list, _ := get("?state=failed")
	if f := list[0]; !f.Failed || f.FailReason != "unknown node "+nodeA || f.Attempts != 1 ||
		f.LastError != "the upstream answered 503" || f.Due != nil || f.Size != 0 || f.Received.IsZero() {
		t.Errorf("failed entry %+v", f)
	}
	_, list, _ = get("?kind=reports&limit=1")
	if w := list[0]; w.Failed || w.Due == nil || w.Size != 1 || w.Attempts != 0 {
		t.Errorf("waiting entry %+v", w)
	}
	for _, q := range []string{"?state=lost", "?kind=etc", "?limit=0", "?limit=-1", "?limit=x", fmt.Sprintf("?limit=%d", delivery.MaxListLimit+1)} {
		if code, _, _ := get(q); code != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", q, code)
		}
	}
	// The bound holds whatever the store keeps.
	for i := range delivery.DefaultListLimit + 5 {
		keep(t, s, "inventory-updates", fmt.Sprintf("u%04d.gz", i), nil)
	}
	if _, list, total := get("?kind=inventory-updates"); len(list) != delivery.DefaultListLimit || total != fmt.Sprint(delivery.DefaultListLimit+5) {
		t.Errorf("default limit: %d listed, total %s", len(list), total)
	}
}
