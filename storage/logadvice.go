package storage

import (
	"sync"
	"sync/atomic"
	"time"
)

// logAdvice keeps the kernel from reading ahead into the logs Badger writes through memory
// maps: the write-ahead logs of the memtables (*.mem) and the value-log file being written
// (the *.vlog with the highest number).
//
// Why: a page fault in a shared file mapping may make the kernel read ahead, and on recent
// kernels it then caches the file in large folios (up to 2 MiB). A write into such a folio
// dirties all of it, and each fsync of the log writes the whole folio back, again and again
// while appends land in it: measured on ext4 (Linux 6.18), 60 disk bytes written per byte
// of a 1 KiB file with the content in the value log, 3.7 with this advice (TestWear).
// MADV_RANDOM turns read-ahead off for the mapping, so writes dirty 4 KiB pages.
//
// Older value-log files keep normal read-ahead: only they serve large reads (GET of a big
// file), and nothing appends to them. New mappings appear when a memtable or value-log file
// rotates, so the advice is given again (it is idempotent and cheap: a few system calls)
// at most every adviceInterval, just before a sync; in that window only a few folios of a
// new log can become large.
//
// The advice has a price: without read-ahead every 4 KiB page of a log faults on its own,
// which is what limits a large upload (64 MiB: about 190 MB/s with the advice, 275 without,
// BenchmarkPutInProcess64MiB). So while an upload of more than bulkAfter is writing its chunks (bulk),
// the value-log file gets normal read-ahead back; the memtables' logs keep the advice.
type logAdvice struct {
	dir string
	// bulk counts the uploads writing chunks now.
	bulk atomic.Int32

	mu   sync.Mutex
	last time.Time
}

// adviceInterval is how often the process's mappings are looked at again.
const adviceInterval = 100 * time.Millisecond

func newLogAdvice(dir string) *logAdvice {
	return &logAdvice{dir: dir}
}

// refresh advises the logs' mappings, at most every adviceInterval unless
// force is set. Errors are ignored: the advice only saves disk writes.
func (a *logAdvice) refresh(force bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if !force && now.Sub(a.last) < adviceInterval {
		return
	}
	a.last = now
	adviseLogMappings(a.dir, a.bulk.Load() > 0)
}

// bulkStart says that a large upload is writing chunks: the value log gets read-ahead back.
func (a *logAdvice) bulkStart() {
	if a.bulk.Add(1) == 1 {
		a.refresh(true)
	}
}

// bulkEnd says that an upload wrote its last chunk (or was abandoned).
func (a *logAdvice) bulkEnd() {
	if a.bulk.Add(-1) == 0 {
		a.refresh(true)
	}
}
