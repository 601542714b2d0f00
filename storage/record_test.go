package storage

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleFile() FileMeta {
	return FileMeta{Key: FileKey{"t", "s", "id"}, Header: []byte("header=rudder-signature-v1\nalgorithm=sha256\n"),
		Algorithm: "sha256", Hash: "abcd", Size: 1024, Expires: time.Unix(1700000000, 0),
		Stored: time.UnixMilli(1690000000123), upload: 42, chunks: 1}
}

func sampleJob() Job {
	return Job{File: FileKey{"t", "s", "id"}, Header: []byte("h\n"), NextHop: "relay2", Size: 5,
		Expires: time.Unix(1700000000, 0), Due: time.Unix(0, 1690000000000000000), Attempts: 3,
		LastError: "refused", Queued: time.UnixMilli(1690000000123), key: jobKey(1690000000000000000, 7),
		upload: 9, chunks: 2}
}

// TestRecordRoundTrip checks version 2 records both ways, and that version 1 (JSON) records
// written by earlier releases still read the same.
func TestRecordRoundTrip(t *testing.T) {
	m := sampleFile()
	b, _ := encodeFile(m)
	if got, err := decodeFile(m.Key, b); err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("file v2: %+v, %v; want %+v", got, err, m)
	}
	v1, _ := json.Marshal(fileRecord{V: 1, Header: m.Header, Algorithm: m.Algorithm, Hash: m.Hash, Size: m.Size,
		Expires: m.Expires.Unix(), Stored: m.Stored.UnixMilli(), Upload: m.upload, Chunks: m.chunks})
	if got, err := decodeFile(m.Key, v1); err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("file v1: %+v, %v; want %+v", got, err, m)
	}
	if len(b) >= len(v1)*3/4 {
		t.Errorf("v2 record %d bytes, v1 %d: not compact", len(b), len(v1))
	}
	j := sampleJob()
	b, _ = encodeJob(j)
	if got, err := decodeJob(j.key, b); err != nil || !reflect.DeepEqual(got, j) {
		t.Errorf("job v2: %+v, %v; want %+v", got, err, j)
	}
	v1, _ = json.Marshal(jobRecord{V: 1, File: j.File.String(), Header: j.Header, NextHop: j.NextHop, Size: j.Size,
		Expires: j.Expires.Unix(), Attempts: j.Attempts, LastError: j.LastError, Queued: j.Queued.UnixMilli(),
		Upload: j.upload, Chunks: j.chunks})
	if got, err := decodeJob(j.key, v1); err != nil || !reflect.DeepEqual(got, j) {
		t.Errorf("job v1: %+v, %v; want %+v", got, err, j)
	}
}

func TestDecodeRecordBadInput(t *testing.T) {
	file, _ := encodeFile(sampleFile())
	job, _ := encodeJob(sampleJob())
	hugeChunks := newRecord(0)
	hugeChunks.bytes(nil)
	hugeChunks.string("")
	hugeChunks.string("")
	for _, v := range []int64{1, 0, 0} {
		hugeChunks.int(v)
	}
	hugeChunks.uint(1)
	hugeChunks.uint(1 << 40)
	for _, tc := range []struct {
		name, want string
		job        bool
		b          []byte
	}{
		{"empty", "record truncated", false, nil},
		{"version 3", "unknown record version 3", false, []byte{3, 0}},
		{"truncated", "record truncated", false, file[:len(file)-1]},
		{"header longer than record", "record truncated", false, []byte{2, 0x7f, 'a'}},
		{"trailing bytes", "bytes after the record", false, append(append([]byte(nil), file...), 0)},
		{"bad varint", "record truncated", false, []byte{2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"too many chunks", "chunks", false, hugeChunks.b},
		{"json v9", "unknown record version 9", false, []byte(`{"v":9}`)},
		{"bad json", "corrupt record", false, []byte(`{"v":`)},
		{"job truncated", "record truncated", true, job[:len(job)-2]},
		{"job empty", "record truncated", true, []byte{}},
		{"job bad file key", "bad file key", true, func() []byte { j := sampleJob(); j.File = FileKey{"a/b", "c", "d"}; b, _ := encodeJob(j); return b }()},
		{"job json v2", "unknown record version 2", true, []byte(`{"v":2}`)},
	} {
		var err error
		if tc.job {
			_, err = decodeJob(sampleJob().key, tc.b)
		} else {
			_, err = decodeFile(FileKey{"t", "s", "id"}, tc.b)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzDecodeFile(f *testing.F) {
	b, _ := encodeFile(sampleFile())
	f.Add(b)
	f.Add([]byte(`{"v":1,"header":"aA==","size":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeFile(FileKey{"t", "s", "id"}, b)
		if err != nil || b[0] == '{' {
			return
		}
		again, _ := encodeFile(m)
		if m2, err := decodeFile(m.Key, again); err != nil || !reflect.DeepEqual(m, m2) {
			t.Errorf("re-encoded record reads %+v, %v; want %+v", m2, err, m)
		}
	})
}

func FuzzDecodeJob(f *testing.F) {
	b, _ := encodeJob(sampleJob())
	f.Add(b)
	f.Add([]byte(`{"v":1,"file":"t/s/i","size":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		key := sampleJob().key
		j, err := decodeJob(key, b)
		if err != nil || b[0] == '{' {
			return
		}
		again, _ := encodeJob(j)
		if j2, err := decodeJob(key, again); err != nil || !reflect.DeepEqual(j, j2) {
			t.Errorf("re-encoded record reads %+v, %v; want %+v", j2, err, j)
		}
	})
}
