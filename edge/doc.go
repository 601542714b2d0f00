// Package edge will hold the relay's gRPC NodeClusterService edge extensions: attestation,
// enrollment, ConnectEdge streams, command dispatch, key rotation and health.
package edge
