package agentuploads

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/wire/uploadname"
	"github.com/keel-relay/keel/relay/uploadslots"
	"github.com/keel-relay/keel/storage"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCreatedThenReplaced: a new name is 201 with its Location, the same name again 204, and
// the store keeps the last bytes sent, once; each kept upload wakes the delivery.
func TestCreatedThenReplaced(t *testing.T) {
	k := newKit(t, kitOptions{})
	first, second := randomBytes(t, 3000), randomBytes(t, 40000) // one below a chunk, one bigger than the first buffer
	resp := k.put(t, "/reports/"+reportName, acceptedUser, acceptedPass, first)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("first PUT: %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Location"); got != "/reports/"+reportName {
		t.Errorf("Location %q", got)
	}
	if resp := k.put(t, "/reports/a%20b%3F.log", acceptedUser, acceptedPass, first); resp.Header.Get("Location") != "/reports/a%20b%3F.log" {
		t.Errorf("Location %q, want the name escaped", resp.Header.Get("Location"))
	}
	resp = k.put(t, "/reports/"+reportName, acceptedUser, acceptedPass, second)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("second PUT: %d", resp.StatusCode)
	}
	if b, _ := io.ReadAll(resp.Body); len(b) != 0 {
		t.Errorf("204 with a body: %q", b)
	}
	kept := k.kept(t, uploadname.Report)
	if len(kept) != 1 || !bytes.Equal(kept[reportName], second) {
		t.Errorf("kept %d uploads; the report equals the second body: %v", len(kept), bytes.Equal(kept[reportName], second))
	}
	if len(k.stored) != 2 {
		t.Errorf("delivery woken %d times, want 2", len(k.stored))
	}
	if k.counted(uploadname.Report, resultCreated) != 1 || k.counted(uploadname.Report, resultReplaced) != 1 {
		t.Error("created and replaced not counted once each")
	}
}

// TestInventoryPair: the two files of an inventory come in either order, over the initial
// credentials (/inventories/) or the accepted ones (/inventory-updates/), and both are kept
// under their own names with their own bytes.
func TestInventoryPair(t *testing.T) {
	for _, tc := range []struct {
		name       string
		kind       uploadname.Kind
		user, pass string
		order      []string
	}{
		{"first inventory, gz then sign", uploadname.Inventory, initialUser, initialPass, []string{invGz, invSign}},
		{"first inventory, sign then gz", uploadname.Inventory, initialUser, initialPass, []string{invSign, invGz}},
		{"update, sign then gz", uploadname.InventoryUpdate, acceptedUser, acceptedPass, []string{invSign, invGz}},
		{"old agent's name", uploadname.InventoryUpdate, acceptedUser, acceptedPass, []string{"node1.example.test-5d1b6cd2-2b0f-4ee9-9c5b-4e0e4f7fd2a1.ocs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKit(t, kitOptions{})
			sent := map[string][]byte{}
			for _, name := range tc.order {
				sent[name] = randomBytes(t, 1000+len(sent))
				if resp := k.put(t, "/"+tc.kind.Dir()+"/"+name, tc.user, tc.pass, sent[name]); resp.StatusCode != http.StatusCreated {
					t.Fatalf("PUT %s: %d", name, resp.StatusCode)
				}
			}
			kept := k.kept(t, tc.kind)
			if len(kept) != len(sent) {
				t.Fatalf("kept %d, sent %d", len(kept), len(sent))
			}
			for name, b := range sent {
				if !bytes.Equal(kept[name], b) {
					t.Errorf("%s: kept bytes differ", name)
				}
			}
		})
	}
}

// TestDurable: what was answered 201 is in the store after it is closed and opened again.
func TestDurable(t *testing.T) {
	k := newKit(t, kitOptions{})
	body := randomBytes(t, 300<<10/10)
	if resp := k.put(t, "/reports/"+reportName, acceptedUser, acceptedPass, body); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	opts := k.store.Options()
	if err := k.store.Close(); err != nil {
		t.Fatal(err)
	}
	k.store = nil
	s, err := storage.Open(opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if kept := keptIn(t, s, uploadname.Report); !bytes.Equal(kept[reportName], body) {
		t.Errorf("after reopening, the report is %d bytes, want the %d sent", len(kept[reportName]), len(body))
	}
}

// TestDropped: names accepted but not to be forwarded (the relay's self-test file uuid.hive,
// a report whose name does not parse) are read to their end, answered 201, kept nowhere and
// counted as dropped.
func TestDropped(t *testing.T) {
	k := newKit(t, kitOptions{})
	for _, tc := range []struct {
		kind       uploadname.Kind
		name       string
		user, pass string
	}{
		{uploadname.Inventory, "uuid.hive", initialUser, initialPass},
		{uploadname.InventoryUpdate, "uuid.hive", acceptedUser, acceptedPass},
		{uploadname.Report, "not-a-report.txt", acceptedUser, acceptedPass},
	} {
		if resp := k.put(t, "/"+tc.kind.Dir()+"/"+tc.name, tc.user, tc.pass, randomBytes(t, 5000)); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT %s/%s: %d", tc.kind.Dir(), tc.name, resp.StatusCode)
		}
		if got := k.counted(tc.kind, resultDropped); got != 1 {
			t.Errorf("%s: dropped counted %v", tc.kind.Dir(), got)
		}
	}
	if st := k.store.AgentUploadStats(); st.Waiting != 0 || st.Failed != 0 {
		t.Errorf("dropped uploads were kept: %+v", st)
	}
	if len(k.stored) != 0 {
		t.Error("a dropped upload woke the delivery")
	}
	// A dropped upload's body is bounded all the same.
	if resp := k.put(t, "/inventories/uuid.hive", initialUser, initialPass, make([]byte, testMaxBody+1)); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize dropped upload: %d", resp.StatusCode)
	}
}

// TestNoRoom: beyond agent_uploads.max_waiting a new upload is 507, nothing kept; a
// replacement of a kept one still goes in.
func TestNoRoom(t *testing.T) {
	k := newKit(t, kitOptions{storeOpts: func(o *storage.Options) { o.MaxAgentUploads = 1 }})
	if resp := k.put(t, "/reports/"+reportName, acceptedUser, acceptedPass, []byte("one")); resp.StatusCode != http.StatusCreated {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	other := strings.Replace(reportName, "10:00:00", "11:00:00", 1)
	resp := k.put(t, "/reports/"+other, acceptedUser, acceptedPass, []byte("two"))
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("second: %d, want 507", resp.StatusCode)
	}
	if resp := k.put(t, "/reports/"+reportName, acceptedUser, acceptedPass, []byte("one again")); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("replacement: %d, want 204", resp.StatusCode)
	}
	if kept := k.kept(t, uploadname.Report); len(kept) != 1 || string(kept[reportName]) != "one again" {
		t.Errorf("kept %q", kept)
	}
	if k.counted(uploadname.Report, resultNoRoom) != 1 {
		t.Error("no_room not counted")
	}
}

// TestBusy: with every upload slot held (by a shared file, say), an agent's upload waits
// http.upload_slot_wait, then gets 503 with Retry-After; nothing is kept.
func TestBusy(t *testing.T) {
	k := newKit(t, kitOptions{slots: 1, slotWait: 100 * time.Millisecond})
	slot, err := k.pool.Acquire(t.Context(), uploadslots.ClientOf("192.0.2.1:1"), 0, func() {})
	if err != nil {
		t.Fatal(err)
	}
	resp := k.put(t, "/reports/"+reportName, acceptedUser, acceptedPass, []byte("report"))
	slot.Release()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := k.put(t, "/reports/"+reportName, acceptedUser, acceptedPass, []byte("report")); resp.StatusCode != http.StatusCreated {
		t.Fatalf("with the slot free: %d", resp.StatusCode)
	}
}

// alwaysNear is a relay that stays near its memory budget (relay.Options.Pressure).
type alwaysNear struct{}

func (alwaysNear) Near() bool { return true }

// TestMemoryPressure: near the memory budget an upload waits for its slot, then gets 503
// with Retry-After; nothing is kept.
func TestMemoryPressure(t *testing.T) {
	k := newKit(t, kitOptions{slotWait: 100 * time.Millisecond, pressure: alwaysNear{}})
	resp := k.put(t, "/reports/"+reportName, acceptedUser, acceptedPass, []byte("report"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if st := k.store.AgentUploadStats(); st.Waiting != 0 {
		t.Errorf("kept %+v", st)
	}
	if k.counted(uploadname.Report, resultBusy) != 1 {
		t.Error("busy not counted")
	}
}

// TestExpectContinue: a client that asks for 100-continue gets it once it is authenticated
// and sends its body then; one that is not gets its 401 without 100 Continue.
func TestExpectContinue(t *testing.T) {
	k := newKit(t, kitOptions{})
	body := randomBytes(t, 20000)
	for _, tc := range []struct {
		name  string
		pass  string
		codes []int // the answers read, in order
	}{
		{"authenticated", acceptedPass, []int{100, 201}},
		{"wrong password", "nope", []int{401}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", k.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			auth := base64.StdEncoding.EncodeToString([]byte(acceptedUser + ":" + tc.pass))
			fmt.Fprintf(c, "PUT /reports/%s HTTP/1.1\r\nHost: relay\r\nAuthorization: Basic %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", reportName, auth, len(body))
			br := bufio.NewReader(c)
			for i, want := range tc.codes {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("answer %d: %v", i, err)
				}
				if resp.StatusCode != want {
					t.Fatalf("answer %d: %d, want %d", i, resp.StatusCode, want)
				}
				if want == 100 {
					if _, err := c.Write(body); err != nil {
						t.Fatal(err)
					}
					continue
				}
				resp.Body.Close()
			}
		})
	}
	if kept := k.kept(t, uploadname.Report); !bytes.Equal(kept[reportName], body) {
		t.Error("the body sent after 100 Continue is not what was kept")
	}
}

// TestRootDir: at the root, uploads are written into root_dir's subdirectories (created
// 0750), 201 then 204; the final name only ever holds a whole file: a body cut half-way
// leaves nothing, under its name or a temporary one.
func TestRootDir(t *testing.T) {
	k := newKit(t, kitOptions{root: true, idle: 200 * time.Millisecond})
	for _, kind := range uploadname.Kinds {
		user, pass, name := acceptedUser, acceptedPass, invGz
		switch kind {
		case uploadname.Inventory:
			user, pass = initialUser, initialPass
		case uploadname.Report:
			name = reportName
		}
		path := filepath.Join(k.rootDir, filepath.FromSlash(kind.RootSubdir()), name)
		for i, want := range []int{http.StatusCreated, http.StatusNoContent} {
			body := randomBytes(t, 10000+i)
			if resp := k.put(t, "/"+kind.Dir()+"/"+name, user, pass, body); resp.StatusCode != want {
				t.Fatalf("%s PUT %d: %d, want %d", kind.Dir(), i, resp.StatusCode, want)
			}
			if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, body) {
				t.Fatalf("%s: %d bytes, %v; want the %d sent", path, len(b), err, len(body))
			}
		}
		st, err := os.Stat(filepath.Dir(path))
		if err != nil || st.Mode().Perm() != 0o750 {
			t.Errorf("%s: %v, %v; want a directory 0750", filepath.Dir(path), st.Mode(), err)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
			t.Errorf("%s: %v, %v; want 0640", path, st.Mode(), err)
		}
	}
	// A body that stops half-way: the report is not there, under any name.
	c, err := net.Dial("tcp", k.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(acceptedUser + ":" + acceptedPass))
	other := strings.Replace(reportName, "10:00:00", "12:00:00", 1)
	fmt.Fprintf(c, "PUT /reports/%s HTTP/1.1\r\nHost: relay\r\nAuthorization: Basic %s\r\nContent-Length: 50000\r\n\r\n", other, auth)
	_, _ = c.Write(make([]byte, 20000))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	c.Close()
	if err != nil || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled upload: %v, %v; want 408", resp, err)
	}
	ents, err := os.ReadDir(filepath.Join(k.rootDir, "reports", "incoming"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != reportName {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("reports/incoming holds %q, want only the whole report", names)
	}
}

// TestRootDirNotWritable: a root_dir that cannot be written is a 500, not a 2xx.
func TestRootDirNotWritable(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("root writes anywhere")
	}
	k := newKit(t, kitOptions{root: true})
	if err := os.Chmod(k.rootDir, 0o500); err != nil {
		t.Fatal(err)
	}
	if resp := k.put(t, "/reports/"+reportName, acceptedUser, acceptedPass, []byte("x")); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("%d, want 500", resp.StatusCode)
	}
}

// BenchmarkPutReport: PUT of a 4 KiB report over loopback into a store on disk (synced
// before the answer), with one upload slot (one upload at a time), then 16 (their syncs
// shared).
func BenchmarkPutReport(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("slots=%d", clients), func(b *testing.B) {
			k := newKit(b, kitOptions{slots: clients})
			k.stored = make(chan struct{}, 1<<20)
			body := randomBytes(b, 4<<10)
			c := k.srv.Client()
			c.Transport.(*http.Transport).MaxIdleConnsPerHost = clients
			var seq atomic.Int64
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.SetParallelism(clients) // clients*GOMAXPROCS goroutines; the slots bound them to clients at once
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					url := fmt.Sprintf("%s/reports/2026-12-03T10:00:00+00:00@node-%07d.log.gz", k.srv.URL, seq.Add(1))
					req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
					req.SetBasicAuth(acceptedUser, acceptedPass)
					resp, err := c.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						b.Errorf("PUT: %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
