package relay

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/httpapi"
)

// TestDiskWaitAnswers: while the relay waits for disk space to open its database, status
// says why (503), an upload gets 507, anything else 503 with Retry-After, and the access
// lists still apply; nothing names the data directory.
func TestDiskWaitAnswers(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = "/var/lib/keel-relay"
	cfg.HTTP.AllowedNetworks = []string{"10.0.0.0/8"}
	lists, err := buildLists(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &diskWait{cfg: cfg, build: Build{Version: "test"}, lists: lists, started: time.Now(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	w.setReason(0, 5<<20)
	api, admin := w.handler(false), w.handler(true)
	for _, tc := range []struct {
		name         string
		h            http.Handler
		method, path string
		peer         string
		code         int
		body         string
	}{
		{"status", api, http.MethodGet, "/rudder/relay-api/1/system/status", "10.1.2.3:5000", 503, `"status":"disk_full"`},
		{"status, old prefix", api, http.MethodGet, "/rudder/relay-api/system/status", "10.9.9.9:5000", 503, "disk full: 0 bytes free, need 5242880 to open the database"},
		{"admin status", admin, http.MethodGet, "/status", "127.0.0.1:5000", 503, `"need_bytes": 5242880`},
		{"upload", api, http.MethodPut, "/rudder/relay-api/1/shared-files/t/s/f", "10.1.2.3:5000", 507, "insufficient storage: the relay's disk is full"},
		{"upload, bare prefix", api, http.MethodPut, "/shared-files/t/s/f", "10.1.2.3:5000", 507, "nothing was stored"},
		{"download", api, http.MethodGet, "/shared-files/t/s/f", "10.1.2.3:5000", 503, "waits for space to open its database"},
		{"remote run", api, http.MethodPost, "/rudder/relay-api/1/remote-run/all", "127.0.0.1:5000", 503, "disk full"},
		{"metrics", admin, http.MethodGet, "/metrics", "127.0.0.1:5000", 503, "disk full"},
		{"peer not allowed", api, http.MethodGet, "/rudder/relay-api/1/system/status", "192.0.2.1:5000", 403, "forbidden"},
		{"remote run, not the policy server", api, http.MethodPost, "/rudder/relay-api/1/remote-run/all", "10.1.2.3:5000", 403, "forbidden"},
		{"admin off loopback", admin, http.MethodGet, "/status", "10.1.2.3:5000", 403, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader("body"))
			req.RemoteAddr = tc.peer
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != tc.code || !strings.Contains(body, tc.body) {
				t.Fatalf("%d %q, want %d with %q", rec.Code, body, tc.code, tc.body)
			}
			if strings.Contains(body, cfg.DataDir) {
				t.Errorf("the answer names the data directory: %q", body)
			}
			if tc.code == 503 && !strings.Contains(tc.path, "status") && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if strings.HasSuffix(tc.path, "status") && tc.code == 503 {
				var st httpapi.Status
				var err error
				if tc.path == "/status" { // the admin listener's /status is the bare document
					err = json.Unmarshal(rec.Body.Bytes(), &st)
				} else {
					st, err = httpapi.DecodeStatus(rec.Body.Bytes())
				}
				if err != nil || st.Disk == nil || !st.Disk.Full || st.Version != "test" {
					t.Errorf("status %+v, %v", st, err)
				}
			}
		})
	}
}
