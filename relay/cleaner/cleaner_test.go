package cleaner

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/storage"
)

func TestRunOnce(t *testing.T) {
	opts := storage.DefaultOptions(t.TempDir())
	opts.ChunkSize = 4 << 10
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := storage.Open(opts, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	put := func(id string, expires time.Time) {
		u, err := s.NewUpload(-1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Write(bytes.Repeat([]byte{'x'}, 10_000)); err != nil {
			t.Fatal(err)
		}
		if err := s.CommitFile(u, storage.FileMeta{Key: storage.FileKey{Target: "t", Source: "s", ID: id}, Expires: expires}); err != nil {
			t.Fatal(err)
		}
	}
	put("old1", now.Add(-time.Second))
	put("old2", now.Add(-time.Hour))
	put("fresh", now.Add(time.Hour))

	reg := metrics.NewRegistry()
	c := New(s, time.Minute, NewMetrics(reg), log)
	c.now = func() time.Time { return now }
	res := c.RunOnce(context.Background())
	if res.Expired != 2 || res.Swept != 2 {
		t.Errorf("RunOnce = %+v, want 2 expired and their 2 uploads swept", res)
	}
	if s.FileCount() != 1 {
		t.Errorf("FileCount = %d, want 1", s.FileCount())
	}
	if _, err := s.StatFile(storage.FileKey{Target: "t", Source: "s", ID: "fresh"}); err != nil {
		t.Errorf("fresh file: %v", err)
	}
	var out bytes.Buffer
	_ = reg.WriteText(&out)
	for _, want := range []string{"keel_cleaner_runs_total 1", "keel_cleaner_expired_files_total 2", "keel_cleaner_errors_total 0"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("metrics lack %q:\n%s", want, out.String())
		}
	}
	if res := c.RunOnce(context.Background()); res != (Result{}) {
		t.Errorf("second run = %+v, want nothing to do", res)
	}
}
