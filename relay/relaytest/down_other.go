//go:build !unix

package relaytest

import "testing"

// DownAddr returns a loopback address where nothing listens (a next hop that is down); on
// this system the port is only free, as FreeAddr's, not held for the test.
func DownAddr(t testing.TB) string {
	t.Helper()
	return FreeAddr(t)
}
