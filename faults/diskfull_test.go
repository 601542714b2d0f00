//go:build linux

package faults

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay/relaytest"
)

// mountTmpfs mounts a tmpfs of the given size (e.g. "96m") on a new temporary directory and
// unmounts it when the test ends. It skips the test when not root or when mounting fails.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the disk-full test mounts a tmpfs: it needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "keel-faults", dir).CombinedOutput(); err != nil {
		t.Skipf("mount -t tmpfs -o size=%s: %v: %s", size, err, bytes.TrimSpace(out))
	}
	// Registered after t.TempDir: runs before its removal, and after the relay's cleanup
	// (registered later) has killed the relay.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; detaching it", dir, err, bytes.TrimSpace(out))
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// freeBytes returns the space left for unprivileged writers on dir's file system.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// fillUp writes path until the file system has no room left and returns the bytes written.
func fillUp(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatalf("fill %s: %v", path, err)
		}
	}
}

// chunkedPut sends body without a Content-Length (chunked transfer encoding), so the relay
// cannot check the free space for the whole upload before it starts.
func chunkedPut(c *http.Client, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPut, url, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return 0, nil, err
	}
	req.ContentLength = -1
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// refusedWith507 checks that the relay refused the PUT of path with 507. A client that sends
// a large body without waiting for an early answer can see the connection reset instead of
// the answer (the relay answers without reading the rest of the body); then the relay's
// request log must show the 507.
func refusedWith507(t *testing.T, p *proc, what, path string, code int, body []byte, err error) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s: the relay died (%s):\n%s", what, p.cmd.ProcessState, tail(p.out.String(), 60))
	}
	if err == nil {
		if code != http.StatusInsufficientStorage || !strings.Contains(string(body), "insufficient storage") {
			t.Fatalf("%s: %d %q, want 507 with a message", what, code, body)
		}
		if bytes.Contains(body, []byte("/")) {
			t.Errorf("%s: the 507 names a path (the log has the details, the client need not): %q", what, body)
		}
		t.Logf("%s: 507 %q", what, bytes.TrimSpace(body))
		return
	}
	logged := regexp.MustCompile(`msg=request method=PUT path=` + regexp.QuoteMeta(path) + ` .*status=(\d+)`)
	var m []string
	relaytest.Eventually(t, 2*time.Second, what+": the request is logged", func() bool {
		m = logged.FindStringSubmatch(p.out.String())
		return m != nil
	})
	if m[1] != "507" {
		t.Fatalf("%s: %v; the relay logged status %s, want 507", what, err, m[1])
	}
	t.Logf("%s: the client saw %q; the relay answered 507", what, err)
}

// TestDiskFull runs the relay on a 96 MiB tmpfs with 16 MiB value-log files (a free-space
// reserve of 32 MiB). Uploads are refused with 507 and a message once the reserve is reached,
// never with a 500 or a crash, also when they come without a Content-Length; HEAD and GET of
// the stored files keep working; with the disk then filled to the last byte by another
// process, uploads are still refused with 507 and reads still work; once space is freed,
// uploads succeed again.
//
// The relay must not write anything else while the disk is full to the last byte: Badger
// writes through memory maps, and a write to a full disk kills the process with SIGBUS. So
// the cleaner stays idle here (cleanup_interval 1h) and the node map is not reloaded.
func TestDiskFull(t *testing.T) {
	needBinary(t)
	began := time.Now()
	mnt := mountTmpfs(t, "96m")
	dir := t.TempDir()
	rootN := relaytest.NewNode("root", "root", 0)
	src := relaytest.NewNode("src", "root", 1)
	tgt := relaytest.NewNode("tgt", "root", 2)
	nodes := filepath.Join(dir, "nodes.json")
	relaytest.WriteFileAtomic(t, nodes, relaytest.NodeMap(rootN, src, tgt))
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 16<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	api, admin := relaytest.FreeAddr(t), relaytest.FreeAddr(t)
	s := baseSettings("root", filepath.Join(mnt, "data"), nodes, api, admin)
	s["storage.value_log_file_size"] = "16MiB"
	cfg := writeConfig(t, dir, "relay.yaml", s)
	p := startRelay(t, "relay", cfg, api, admin)
	client := newClient(time.Minute)
	put := func(id string, body []byte) (int, []byte, error) {
		return do(client, http.MethodPut, filesURL(p.api, tgt.ID, src.ID, id), body)
	}

	// Fill with 256 KiB files (a body the relay reads whole even when it refuses it) until
	// refused.
	type stored struct {
		id   string
		seed uint64
		size int
	}
	var files []stored
	const size = 256 << 10
	for i := 0; ; i++ {
		if i == 400 {
			t.Fatalf("100 MiB accepted on a 96 MiB file system")
		}
		f := stored{id: fmt.Sprintf("fill%03d", i), seed: uint64(i) + 1, size: size}
		code, body, err := put(f.id, relaytest.SignedBody(t, src, content(f.seed, size), "1d"))
		if err == nil && code == http.StatusOK {
			files = append(files, f)
			continue
		}
		refusedWith507(t, p, "PUT "+f.id+" on a filling disk", filesPath(tgt.ID, src.ID, f.id), code, body, err)
		break
	}
	t.Logf("refused after %d files of 256 KiB, %d KiB free", len(files), freeBytes(t, mnt)>>10)
	if len(files) == 0 {
		t.Fatal("nothing stored before the refusal")
	}

	// Reads keep working.
	requireReadable := func(when string) {
		t.Helper()
		for _, f := range []stored{files[0], files[len(files)/2], files[len(files)-1]} {
			c := content(f.seed, f.size)
			if code, err := headHash(client, p.api, tgt.ID, src.ID, f.id, sha256Hex(c)); err != nil || code != http.StatusOK {
				t.Fatalf("%s: HEAD %s: %d %v", when, f.id, code, err)
			}
			code, got, _, err := getSigned(client, p.api, tgt, src.ID, f.id)
			if err != nil || code != http.StatusOK || !bytes.Equal(got, c) {
				t.Fatalf("%s: GET %s: %d, %d bytes, %v", when, f.id, code, len(got), err)
			}
		}
		if st := status(t, p.api); st.Files != int64(len(files)) {
			t.Fatalf("%s: files_stored %d, want %d", when, st.Files, len(files))
		}
	}
	requireReadable("refusing uploads")

	small := relaytest.SignedBody(t, src, content(1000, 2<<10), "1d")
	big := relaytest.SignedBody(t, src, content(1001, 3<<20), "1d")
	// Without a Content-Length the relay cannot check the whole upload first: it checks
	// every chunk.
	code, body, err := chunkedPut(client, filesURL(p.api, tgt.ID, src.ID, "reserve-chunked"), big)
	refusedWith507(t, p, "chunked 3 MiB PUT into the reserve", filesPath(tgt.ID, src.ID, "reserve-chunked"), code, body, err)

	// Another process fills the disk to the last byte.
	filler2 := filepath.Join(mnt, "filler2")
	n := fillUp(t, filler2)
	t.Logf("disk filled to the last byte: %d MiB more written by another process, %d bytes free", n>>20, freeBytes(t, mnt))
	for _, c := range []struct {
		name, id string
		put      func(id string) (int, []byte, error)
	}{
		{"2 KiB PUT", "full-small", func(id string) (int, []byte, error) { return put(id, small) }},
		{"3 MiB PUT", "full-big", func(id string) (int, []byte, error) { return put(id, big) }},
		{"chunked 2 KiB PUT", "full-chunked-small", func(id string) (int, []byte, error) {
			return chunkedPut(client, filesURL(p.api, tgt.ID, src.ID, id), small)
		}},
		{"chunked 3 MiB PUT", "full-chunked-big", func(id string) (int, []byte, error) {
			return chunkedPut(client, filesURL(p.api, tgt.ID, src.ID, id), big)
		}},
	} {
		code, body, err := c.put(c.id)
		refusedWith507(t, p, c.name+" on a full disk", filesPath(tgt.ID, src.ID, c.id), code, body, err)
	}
	requireReadable("disk full")

	// Space freed: uploads succeed again.
	if err := os.Remove(filler2); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		f := stored{id: fmt.Sprintf("after%d", i), seed: uint64(2000 + i), size: size}
		code, body, err := put(f.id, relaytest.SignedBody(t, src, content(f.seed, size), "1d"))
		if err != nil || code != http.StatusOK {
			t.Fatalf("PUT %s after space was freed (%d MiB free): %d %q %v", f.id, freeBytes(t, mnt)>>20, code, body, err)
		}
		files = append(files, f)
	}
	code, body, err = chunkedPut(client, filesURL(p.api, tgt.ID, src.ID, "after-chunked"), big)
	if err != nil || code != http.StatusOK {
		t.Fatalf("chunked PUT after space was freed: %d %q %v", code, body, err)
	}
	files = append(files, stored{id: "after-chunked", seed: 1001, size: 3 << 20})
	requireReadable("space freed")
	p.stop(t)
	t.Logf("disk-full test took %s", time.Since(began).Round(time.Millisecond))
}
