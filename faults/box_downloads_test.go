package faults

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// sharedSum is the sha256 of relayd's shared-folder fixture, a file holding "123\n".
const sharedSum = "181210f8f9c779c26da1d9b2075bde0127302ee0e3fca38c9a83f5b1dd8e5d3b"

// boxFiles lays out what a relay box serves under dir: the shared folder (relayd's fixture,
// also under a name with a space), a node's policies and the common policies.
func boxFiles(t *testing.T, dir, node string) {
	t.Helper()
	writeFile(t, dir, "shared-files/file", []byte("123\n"))
	writeFile(t, dir, "shared-files/dir with space/file 2", []byte("123\n"))
	writeFile(t, dir, "share/"+node+"/rules/cfengine-community/promises.cf", []byte("bundle agent main {}\n"))
	writeFile(t, dir, "share/common/cfengine-community/failsafe.cf", []byte("body common control {}\n"))
}

// TestBoxSharedFolder: on a plain-HTTP relay API (loopback, as relayd's own listener), the
// shared folder answers relayd's test cases, /uuid names the relay, /common/ serves with an
// ETag and 304, and /policies/<uuid>/ is never served without a client certificate. The
// policies of a node over TLS with its certificate are in TestBoxTLS.
func TestBoxSharedFolder(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	node := nodeUUID()
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, nodeMapOf(map[string]string{"relay-1": "root", node: "relay-1"}))
	boxFiles(t, dir, node)
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := boxSettings(baseSettings("relay-1", filepath.Join(dir, "data"), nodes, api, admin), dir)
	s["http.allowed_networks"] = `["127.0.0.1/32"]` // 127.0.0.2 is a client from elsewhere
	writeHtpasswd(t, dir, "htpasswd-webdav", bcryptUser+":"+bcryptHash(t, bcryptPass))
	p := startRelay(t, "relay", writeConfig(t, dir, "relay.yaml", s), api, admin)
	c := newClient(10 * time.Second)

	// Every agent path is behind http.allowed_networks: 403 to a client outside them.
	outside := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil,
		DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
			return relaytest.DialFrom(addr, "127.0.0.2")
		}}}
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/uuid"},
		{http.MethodHead, "/rudder/relay-api/1/shared-folder/file?hash=" + sharedSum},
		{http.MethodGet, "/rudder/relay-api/shared-folder/file"},
		{http.MethodGet, "/common/cfengine-community/failsafe.cf"},
		{http.MethodGet, "/policies/" + node + "/rules/cfengine-community/promises.cf"},
		{http.MethodPut, "/reports/" + reportName(time.Now(), node)},
		{http.MethodPut, "/inventories/" + node + ".ocs"},
	} {
		hdr := map[string]string{"Authorization": basic(bcryptUser, bcryptPass)}
		if code, _, _, err := get(outside, r.method, p.api+r.path, hdr); err != nil || code != http.StatusForbidden {
			t.Errorf("%s %s from 127.0.0.2, outside http.allowed_networks: %d %v, want 403", r.method, r.path, code, err)
		}
	}

	code, _, body, err := get(c, http.MethodGet, p.api+"/uuid", nil)
	if err != nil || code != http.StatusOK || strings.TrimSpace(body) != "relay-1" {
		t.Errorf("GET /uuid: %d %q %v, want 200 relay-1", code, body, err)
	}

	other := strings.Repeat("0", 64)
	for _, base := range []string{"/rudder/relay-api/shared-folder/", "/rudder/relay-api/1/shared-folder/"} {
		for _, c2 := range []struct {
			method, path string
			want         int
			body         string // GET only
		}{
			{"HEAD", "file?hash=" + sharedSum + "&hash_type=sha256", http.StatusNotModified, ""},
			{"HEAD", "file?hash=" + sharedSum + "&hash_type=", http.StatusNotModified, ""},
			{"HEAD", "file?hash=" + sharedSum, http.StatusNotModified, ""},
			{"HEAD", "dir%20with%20space/file%202?hash=" + sharedSum + "&hash_type=sha256", http.StatusNotModified, ""},
			{"HEAD", "file?hash=" + other + "&hash_type=sha256", http.StatusOK, ""},
			{"HEAD", "file?hash=&hash_type=sha256", http.StatusOK, ""},
			{"HEAD", "file", http.StatusOK, ""},
			{"HEAD", "file?hash=" + strings.Repeat("0", 128) + "&hash_type=sha512", http.StatusOK, ""},
			{"HEAD", "file?hash=xyz&hash_type=sha256", http.StatusBadRequest, ""},
			{"HEAD", "file?hash=" + sharedSum + "&hash_type=md5", http.StatusBadRequest, ""},
			{"HEAD", "missing?hash=" + sharedSum + "&hash_type=sha256", http.StatusNotFound, ""},
			{"HEAD", "..%2F..%2Fnodes.json", http.StatusBadRequest, ""},
			{"HEAD", "dir%5Cfile", http.StatusBadRequest, ""},
			{"GET", "file", http.StatusOK, "123\n"},
			{"GET", "dir%20with%20space/file%202", http.StatusOK, "123\n"},
			{"GET", "missing", http.StatusNotFound, "NOT FOUND"},
		} {
			code, _, body, err := get(c, c2.method, p.api+base+c2.path, nil)
			if err != nil || code != c2.want || (c2.method == "GET" && body != c2.body) || (c2.method == "HEAD" && body != "") {
				t.Errorf("%s %s%s: %d %q %v, want %d %q", c2.method, base, c2.path, code, body, err, c2.want, c2.body)
			}
		}
	}

	// /common/: an ETag, and 304 when the agent already holds that version.
	common := p.api + "/common/cfengine-community/failsafe.cf"
	code, hdr, body, err := get(c, http.MethodGet, common, nil)
	if err != nil || code != http.StatusOK || body != "body common control {}\n" || hdr.Get("ETag") == "" {
		t.Fatalf("GET /common/...: %d %q ETag %q %v", code, body, hdr.Get("ETag"), err)
	}
	if code, _, body, err := get(c, http.MethodGet, common, map[string]string{"If-None-Match": hdr.Get("ETag")}); err != nil || code != http.StatusNotModified || body != "" {
		t.Errorf("GET /common/... If-None-Match its ETag: %d %q %v, want 304", code, body, err)
	}
	if code, _, _, err := get(c, http.MethodGet, p.api+"/common/missing.cf", nil); err != nil || code != http.StatusNotFound {
		t.Errorf("GET /common/missing.cf: %d %v, want 404", code, err)
	}
	// /policies/<uuid>/: never without a certificate naming <uuid>.
	if code, _, _, err := get(c, http.MethodGet, p.api+"/policies/"+node+"/rules/cfengine-community/promises.cf", nil); err != nil || code != http.StatusForbidden {
		t.Errorf("GET /policies/<uuid>/... over plain HTTP: %d %v, want 403", code, err)
	}
}
