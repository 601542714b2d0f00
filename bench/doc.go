// Package bench holds Keel's performance benchmarks. They run the real keel-relay binary as a
// subprocess on loopback and report figures next to a limit of the machine measured in the
// same run (single-core SHA-256 speed), so results compare across machines as ratios.
//
//	go test -run='^$' -bench=. -benchtime=1x ./bench/
//
// The report that `make bench` writes to bench/REPORT.md and bench/report.json comes from the
// program in bench/cmd/report (`make bench-quick` runs it with small sizes); the bare HEAD
// server it compares the relay with is bench/cmd/bareserver.
package bench
