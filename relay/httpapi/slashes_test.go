package httpapi

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCollapse(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                     "",
		"/":                    "/",
		"//":                   "/",
		"//inventories/x":      "/inventories/x",
		"/a///b//c/":           "/a/b/c/",
		"a//b":                 "a/b",
		"/a/./b/../c":          "/a/./b/../c",
		"//a//..//b":           "/a/../b",
		"/no/double":           "/no/double",
		"/a/%2F%2F/b":          "/a/%2F%2F/b",
		"////////////////////": "/",
	} {
		if got := collapse(in); got != want {
			t.Errorf("collapse(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCollapseSlashes sends raw request lines over a real connection and looks at the path
// the handler behind CollapseSlashes sees.
func TestCollapseSlashes(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(CollapseSlashes(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s|%s|%s", r.URL.Path, r.URL.RawPath, r.URL.EscapedPath(), r.URL.RawQuery)
	})))
	defer srv.Close()
	for _, tc := range []struct{ target, want string }{
		{"//inventories/x", "/inventories/x||/inventories/x|"},
		{"/inventories//x", "/inventories/x||/inventories/x|"},
		{"///reports///a.log.gz?x=1//2", "/reports/a.log.gz||/reports/a.log.gz|x=1//2"},
		{"//inventories/../etc", "/inventories/../etc||/inventories/../etc|"},
		{"//inventories/./x", "/inventories/./x||/inventories/./x|"},
		{"/plain/path", "/plain/path||/plain/path|"},
		{"//shared/a%20b", "/shared/a b||/shared/a%20b|"},
		// RawPath set (an escaped slash): collapsed too, and kept when it still spells the path.
		{"//a%2Fb//c", "/a/b/c|/a%2Fb/c|/a%2Fb/c|"},
		// An escaped slash next to a literal one: the raw path no longer spells the collapsed one.
		{"/a/%2F/b", "/a/b||/a/b|"},
	} {
		got := rawGet(t, srv.Listener.Addr().String(), tc.target)
		if got != tc.want {
			t.Errorf("GET %s: handler saw %q, want %q", tc.target, got, tc.want)
		}
	}
}

// rawGet sends "GET target" as is (a Go client would clean it) and returns the body.
func rawGet(t *testing.T, addr, target string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// TestRouterCollapsesSlashes: the relay API's router routes "//rudder//relay-api/1/system/status"
// as the single-slash path, and a dot segment is not cleaned into another route.
func TestRouterCollapsesSlashes(t *testing.T) {
	t.Parallel()
	api, _ := serveSystem(t, &fixedSystem{code: 200})
	addr := strings.TrimPrefix(api, "http://")
	if got := rawGet(t, addr, "//rudder//relay-api/1///system/status"); !strings.Contains(got, `"action":"getStatus"`) {
		t.Errorf("doubled slashes: %q", got)
	}
	if got := rawGet(t, addr, "//rudder/relay-api/1/system/x/../status"); !strings.Contains(got, "no such route") {
		t.Errorf("dot segments were cleaned: %q", got)
	}
}

func FuzzCollapse(f *testing.F) {
	for _, s := range []string{"", "//", "/a//b", "a/./..//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := collapse(s)
		if strings.Contains(c, "//") || len(c) > len(s) || strings.ReplaceAll(c, "/", "") != strings.ReplaceAll(s, "/", "") {
			t.Fatalf("collapse(%q) = %q", s, c)
		}
	})
}
