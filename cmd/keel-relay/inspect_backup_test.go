package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-relay/keel/relay"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/relaytest"
	"github.com/keel-relay/keel/storage"
)

// TestProgress: forced, progress speaks every interval and says the total when done; on a
// writer that is not a terminal and unforced, it stays silent and counts nothing.
func TestProgress(t *testing.T) {
	var out relaytest.SyncBuffer
	if p := startProgress(&out, "backup", false, time.Millisecond); p != nil {
		t.Fatal("progress on a buffer, unforced")
	}
	p := startProgress(&out, "backup", true, 10*time.Millisecond)
	w := p.writer(io.Discard)
	if _, err := w.Write(make([]byte, 3<<20)); err != nil {
		t.Fatal(err)
	}
	relaytest.Eventually(t, 5*time.Second, "a progress line", func() bool { return strings.Contains(out.String(), "backup: 3MiB, ") })
	p.done()
	p.done()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "backup: 3MiB, ") || !strings.Contains(last, "/s, ") {
		t.Errorf("last line %q", last)
	}
	// A seekable source stays seekable, and the count follows its position.
	var out2 relaytest.SyncBuffer
	p = startProgress(&out2, "restore", true, time.Hour)
	r := p.reader(bytes.NewReader(make([]byte, 2048)))
	rs, ok := r.(io.ReadSeeker)
	if !ok {
		t.Fatal("the reader of a seekable source does not seek")
	}
	_, _ = io.Copy(io.Discard, rs)
	if _, err := rs.Seek(1024, io.SeekStart); err != nil || p.n.Load() != 1024 {
		t.Errorf("after a seek: %d, %v", p.n.Load(), err)
	}
	p.done()
	if !strings.HasPrefix(out2.String(), "restore: 1KiB, ") {
		t.Errorf("restore progress %q", out2.String())
	}
}

// TestBackupPipeRestore: `backup -` streams to stdout, `restore -` reads stdin, through a pipe
// between two keel-relay processes, both with --progress; run as root, the restore gives the
// files to the owner of the data directory's parent (root owns the data directory it made).
func TestBackupPipeRestore(t *testing.T) {
	dir := t.TempDir()
	writeCfg := func(name, dataDir string) string {
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte("node_id: root\ndata_dir: "+dataDir+"\nadmin:\n  listen: \"\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	srcData := filepath.Join(dir, "src-data")
	cfg := config.Default()
	cfg.NodeID, cfg.DataDir = "root", srcData
	s, err := storage.Open(relay.StorageOptions(cfg), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for i, content := range [][]byte{[]byte("one\n"), randomBytes(t, 600<<10)} {
		u, err := s.NewUpload(int64(len(content)))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = u.Write(content)
		sum := sha256.Sum256(content)
		meta := storage.FileMeta{Key: storage.FileKey{Target: "n1", Source: "root", ID: "f" + string(rune('a'+i))}, Header: []byte("header=rudder-signature-v1\n"),
			Algorithm: "sha256", Hash: hex.EncodeToString(sum[:]), Expires: time.Now().Add(time.Hour), Stored: time.Now()}
		if err := s.CommitFile(u, meta); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The restore's data directory does not exist; its parent belongs to the relay's user.
	const uid, gid = 12345, 23456
	parent := filepath.Join(dir, "keel")
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	asRoot := os.Geteuid() == 0
	if asRoot {
		if err := os.Chown(parent, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	dstData := filepath.Join(parent, "data")

	backup := exec.Command(relayBin, "backup", "--config", writeCfg("src", srcData), "--progress", "-")
	restore := exec.Command(relayBin, "restore", "--config", writeCfg("dst", dstData), "--progress", "-")
	backup.Env, restore.Env = cleanEnv(), cleanEnv()
	pipe, err := backup.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var backupErr, restoreOut, restoreErr bytes.Buffer
	backup.Stderr, restore.Stdin, restore.Stdout, restore.Stderr = &backupErr, pipe, &restoreOut, &restoreErr
	if err := backup.Start(); err != nil {
		t.Fatal(err)
	}
	if err := restore.Start(); err != nil {
		t.Fatal(err)
	}
	berr, rerr := backup.Wait(), restore.Wait()
	if berr != nil || rerr != nil {
		t.Fatalf("backup: %v\n%s\nrestore: %v\n%s%s", berr, backupErr.String(), rerr, restoreOut.String(), restoreErr.String())
	}
	if !strings.Contains(backupErr.String(), "backup: ") || !strings.Contains(backupErr.String(), "/s, ") ||
		!strings.Contains(backupErr.String(), "backup written to stdout") {
		t.Errorf("backup stderr:\n%s", backupErr.String())
	}
	if !strings.Contains(restoreErr.String(), "restore: ") || !strings.Contains(restoreOut.String(), "restored - into "+dstData+": 2 files, 0 queued forwards") {
		t.Errorf("restore:\n%s%s", restoreOut.String(), restoreErr.String())
	}
	if code, _, errOut := runCmd("restore", "--config", writeCfg("dst", dstData), "--force", "-"); code != 2 || !strings.Contains(errOut, "not stdin") {
		t.Errorf("restore --force -: %d %s, want 2 and a refusal", code, errOut)
	}
	code, out, errOut := runCmd("files", "ls", "--config", writeCfg("dst", dstData))
	if code != 0 || !strings.Contains(out, "2 of 2 file(s) kept") {
		t.Errorf("files ls of the restored store: %d\n%s%s", code, out, errOut)
	}
	if !asRoot {
		t.Log("not root: ownership left as it is, not checked")
		return
	}
	if !strings.Contains(restoreOut.String(), "to uid 12345, gid 23456 (the owner of "+parent+")") {
		t.Errorf("restore says nothing of ownership:\n%s", restoreOut.String())
	}
	err = filepath.WalkDir(dstData, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if u, g := fileOwner(info); u != uid || g != gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", path, u, g, uid, gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
