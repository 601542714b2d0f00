// Package envelope builds and checks the SealNodeEnvelope of the edge gRPC API
// (SPEC-edge-grpc.md, "SealNodeEnvelope" and "RotateEdgeKey").
//
// An envelope carries the node security token, a canonical payload and an Ed25519
// signature of that payload by the node key. The payload is, integers little-endian:
//
//	kind      u8   Hello 1, Heartbeat 2, CommandResult 3, CommandProgress 4,
//	               CapabilityUpdate 5, Rotate 6
//	timestamp u64  Unix milliseconds
//	node_id   u32 length + UTF-8
//	stream_id u32 length + UTF-8 (empty for Rotate)
//	inner     u32 length + bytes
//
// For the stream messages (kinds 1–5) inner is the protobuf encoding of the event's
// message with its envelope field unset; [Open] compares the decoded inner message with
// the received one (proto.Equal, never bytes). For a rotation inner is
// new_public_key ‖ nonce, see [SealRotate] and [OpenRotate].
//
// Seal, Open and their rotation twins are stateless: the caller checks the token, the
// node id against the token's subject, the stream id against the stream's Hello, the
// timestamp window and order, and seen nonces. The package is shared by the relay's edge
// server and keel-agent.
package envelope
