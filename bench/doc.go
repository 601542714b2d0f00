// Package bench holds Keel's performance benchmarks. They run the real keel-relay binary as a
// subprocess on loopback and report figures next to a limit of the machine measured in the
// same run (single-core SHA-256 speed), so results compare across machines as ratios.
//
//	go test -run='^$' -bench=. -benchtime=1x ./bench/
package bench
