// Package faults holds Keel's fault-injection tests: the real keel-relay binary, on loopback
// only, is killed with SIGKILL during uploads and during queue delivery, loses its upstream,
// runs out of disk (filled by its own writes, by an anonymous AttestNode flood, by another
// process, before a start), is attacked by slow clients and other hostile clients, and sees its
// node map replaced by garbage (also after a SIGKILL with a big map in force, kept or not kept
// for want of space).
// Every load the tests generate goes to 127.0.0.1 and stops by itself.
//
// The package holds tests only. They are skipped unless KEEL_FAULT_TESTS=1 is set; `make
// test-faults` sets it. The disk tests also need root (they mount a small tmpfs) and are
// skipped with a message otherwise.
//
// SIGKILL does not lose the page cache: TestKill9DuringUploads still passes with
// storage.sync_writes off (KEEL_FAULT_TESTS=1 go test ./faults/ -run TestKill9DuringUploads
// -sync-writes=false). Only a power loss or a killed VM shows what the fsyncs are for. What
// the test does catch is a file record committed before all of the file's chunks are written
// (a torn file after the restart), when that window lasts about an fsync or more.
//
// # Guarantees checked
//
// Uploads (a PUT of a file for a node of this relay): a 200 means the file is on disk. After a
// SIGKILL at any moment and a restart, every acknowledged file is served whole, with the hash
// it was acknowledged with or with the content of a later upload of the same file; a file
// whose upload was cut is absent or whole, never torn (a file present holds exactly one of
// the contents ever sent for it); and files_stored in /system/status equals the number of
// files found.
//
// Forwarding (a file queued by a sub-relay for its upstream): delivery is at least once.
// Every file the sub-relay acknowledged ends up at the next hop with the hash of its content,
// and the sub-relay's queue empties. A file is delivered more than once only when the
// sub-relay was killed while the file was in flight: between the start of its first delivery
// attempt and the durable removal of its job, which the next hop cannot see. The tests
// observe that window as the restarts of the sub-relay the job survived after its delivery
// began: the number of kills between the incarnation that made the file's first attempt and
// the one that made its last. For every file f,
//
//	1 ≤ deliveries(f) ≤ 1 + kills_in_flight(f)
//
// where deliveries(f) counts the 2xx answers of the next hop to PUTs of f. With no kill, a
// file is delivered exactly once.
//
// # The relay box
//
// The box_*_test.go files check what Rudder agents, Rudder's tools and the upstream see of a
// relay box (SPEC-relay-box.md), against recording upstreams on loopback: agents' uploads
// (HTTP Basic against htpasswd files with bcrypt, apr1 and {SHA} entries) acknowledged while
// the upstream is down survive a SIGKILL and arrive once each, with their names, bytes and
// upstream_auth credentials, in order per kind, through a chain of two relays too, or into
// root_dir at the root, never partial; uploads in flight at a SIGKILL arrive whole or not at
// all, never older than acknowledged; waiting uploads are bounded (507) and expire after the
// retention, across a restart too; a report of an unknown node is kept aside as failed;
// the shared folder answers relayd's test cases; the TLS front presents the pinned agent key
// (also encrypted as CFEngine keeps it), speaks TLS 1.3, names nodes by their certificates and
// refuses unknown ones; the system endpoints answer in relayd's envelope.
package faults
