// Package edgetoken signs, parses and validates the JSON Web Tokens of the edge gRPC API
// (SPEC-edge-grpc.md, "Tokens"): enrollment tokens and NodeSecurityTokens.
//
// Tokens are compact JWS (RFC 7515) JWTs (RFC 7519) signed with EdDSA over Ed25519
// (RFC 8037) — the only algorithm this package signs or accepts. It uses the standard
// library only. Parsing is strict: base64url without padding or line breaks, valid
// UTF-8, JSON objects without duplicate member names, exact (case-sensitive) claim
// names, at most MaxTokenSize bytes. Validation pins the algorithm before looking at the
// key, refuses critical header parameters, and checks issuer, signature, audience,
// expiry (required), not-before and issued-at with a configurable leeway. Replay (jti),
// blacklists, tenants and key binding (cnf) are the caller's business; [Thumbprint] and
// [Claims.BoundTo] help with the last. [Bearer] and [ParseBearer] carry a token in gRPC
// authorization metadata ("Bearer <token>").
package edgetoken
