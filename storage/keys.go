package storage

import (
	"encoding/binary"
	"strings"
)

// Key namespaces. Node and file ids never contain '/', so '/' separates key parts.
const (
	prefixFile    = "f/" // f/<target>/<source>/<file-id>          -> fileRecord
	prefixChunk   = "c/" // c/<upload BE8><chunk BE4>              -> content bytes
	prefixTTL     = "t/" // t/<expires BE8>/<target>/<source>/<id> -> empty
	prefixOrphan  = "o/" // o/<upload BE8>                         -> chunks not (or no longer) referenced
	prefixJob     = "q/" // q/<due BE8><seq BE8>                   -> jobRecord
	prefixJobFile = "k/" // k/<target>/<source>/<file-id>          -> job key of the queued copy
	keyNodeMap    = "n/current"
	// Agents' uploads (agentuploads.go). A kind never contains '/'; a name is the rest of
	// its key, so it may hold any byte.
	prefixAgentWaiting = "u/" // u/<kind>/<seq BE8> -> agent upload record, waiting (arrival order per kind)
	prefixAgentFailed  = "U/" // U/<kind>/<seq BE8> -> agent upload record, kept aside as failed
	prefixAgentName    = "v/" // v/<kind>/<name>    -> the key (u/ or U/) of the name's kept upload
	// Edge state (edge.go). Ids are the whole rest of the key, so they may hold any byte.
	prefixDaemon    = "e/d/" // e/d/<node-id>     -> daemonRecord
	prefixJTI       = "e/j/" // e/j/<jti>         -> empty, Badger TTL: until the token's exp
	prefixBlacklist = "e/b/" // e/b/<token-id>    -> empty, Badger TTL: until the token's exp
	prefixChallenge = "e/c/" // e/c/<challenge>   -> challengeRecord, Badger TTL: its expiry
	prefixNonce     = "e/n/" // e/n/<nonce hex>   -> empty, Badger TTL: as long as asked
	keySeqUpload    = "!seq/upload"
	// The edge signing key's PEM, copied here at backup time (edge.go).
	keySigningKey = "e/k/signing"
)

// keyNodeMapSuperseded marks the node map kept under keyNodeMap (whose content is the chunks
// of an upload, see nodes.go) as older than the map in force.
const keyNodeMapSuperseded = "n/superseded" // -> supersededValue

// FileKey names a shared file: who it is for, who sent it, and its id.
type FileKey struct {
	Target string
	Source string
	ID     string
}

// String returns "target/source/id".
func (k FileKey) String() string { return k.Target + "/" + k.Source + "/" + k.ID }

func parseFileKey(s string) (FileKey, bool) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return FileKey{}, false
	}
	return FileKey{Target: parts[0], Source: parts[1], ID: parts[2]}, true
}

func fileKey(k FileKey) []byte { return []byte(prefixFile + k.String()) }

func jobFileKey(k FileKey) []byte { return []byte(prefixJobFile + k.String()) }

func chunkPrefix(upload uint64) []byte {
	b := make([]byte, 0, len(prefixChunk)+8)
	b = append(b, prefixChunk...)
	return binary.BigEndian.AppendUint64(b, upload)
}

func chunkKey(upload uint64, n uint32) []byte {
	return binary.BigEndian.AppendUint32(chunkPrefix(upload), n)
}

func orphanKey(upload uint64) []byte {
	b := make([]byte, 0, len(prefixOrphan)+8)
	b = append(b, prefixOrphan...)
	return binary.BigEndian.AppendUint64(b, upload)
}

func ttlKey(expires int64, k FileKey) []byte {
	b := make([]byte, 0, len(prefixTTL)+9+len(k.String()))
	b = append(b, prefixTTL...)
	b = binary.BigEndian.AppendUint64(b, uint64(expires))
	b = append(b, '/')
	return append(b, k.String()...)
}

// parseTTLKey splits a TTL index key into its expiry and file key.
func parseTTLKey(key []byte) (int64, FileKey, bool) {
	rest := key[len(prefixTTL):]
	if len(rest) < 9 || rest[8] != '/' {
		return 0, FileKey{}, false
	}
	k, ok := parseFileKey(string(rest[9:]))
	return int64(binary.BigEndian.Uint64(rest[:8])), k, ok
}

func jobKey(due int64, seq uint64) []byte {
	b := make([]byte, 0, len(prefixJob)+16)
	b = append(b, prefixJob...)
	b = binary.BigEndian.AppendUint64(b, uint64(due))
	return binary.BigEndian.AppendUint64(b, seq)
}
