package edged

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/keel-relay/keel/agent/config"
	"github.com/keel-relay/keel/internal/tlspin"
)

// keepaliveTime is how often the connection is pinged when nothing else is received.
const keepaliveTime = time.Minute

// maxRecvMessage bounds one command from the relay.
const maxRecvMessage = 4 << 20

// transportFor returns how to reach relay: TLS verified with edge.ca_file when it is set;
// else plaintext to a loopback relay ("localhost", 127.0.0.0/8, ::1) or when
// edge.allow_plaintext says so; else TLS verified with the system's roots.
func transportFor(relay string, e config.EdgeConfig) (credentials.TransportCredentials, error) {
	host, _, err := net.SplitHostPort(relay)
	if err != nil {
		return nil, fmt.Errorf("relay %q: %w", relay, err)
	}
	if e.CAFile != "" {
		pool, err := tlspin.LoadCAFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("edge.ca_file: %w", err)
		}
		return credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}), nil
	}
	if isLoopback(host) || e.AllowPlaintext {
		return insecure.NewCredentials(), nil
	}
	return credentials.NewTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}), nil
}

// isLoopback reports whether host names the loopback interface without a DNS lookup.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// dial returns a client connection to relay; it connects on first use.
func dial(relay string, e config.EdgeConfig) (*grpc.ClientConn, error) {
	creds, err := transportFor(relay, e)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(relay,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMessage)),
		grpc.WithUserAgent("keel-agent"),
		// Find a relay that vanished without closing the connection; the relay accepts
		// pings every 20 s or more.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: 20 * time.Second}),
	)
	if err != nil {
		return nil, fmt.Errorf("relay %s: %w", relay, err)
	}
	return conn, nil
}
