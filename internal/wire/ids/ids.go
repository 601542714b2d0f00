// Package ids checks the node ids and file ids that appear in relay URLs
// (".../shared-files/<target>/<source>/<file-id>"). Both must match
// ^[A-Za-z0-9_.-]+$, be at most MaxLen bytes long, and not be "." or "..",
// so they are safe as path elements and storage keys. An edge daemon's node id
// (the edge API's) is stricter: a UUID (ValidEdgeNodeID), and so are the ids
// of fleet commands (ValidFleetID) and every other UUID of the edge API (ValidUUID).
package ids

import (
	"fmt"

	"github.com/google/uuid"
)

// MaxLen is the longest id accepted, in bytes.
const MaxLen = 255

// allowed describes the accepted ids, for error messages.
const allowed = "1 to 255 characters among A-Z a-z 0-9 _ . - and not \".\" or \"..\""

// ValidNodeID reports whether s is an acceptable node id (Rudder node ids
// are UUIDs or "root"), and if not, why.
func ValidNodeID(s string) error { return valid("node id", s) }

// ValidFileID reports whether s is an acceptable shared-file id, and if not,
// why.
func ValidFileID(s string) error { return valid("file id", s) }

func valid(what, s string) error {
	switch {
	case len(s) > MaxLen:
		// Do not echo an arbitrarily long value back.
		return fmt.Errorf("invalid %s %q... (%d bytes): must be %s", what, s[:32], len(s), allowed)
	case s == "" || s == "." || s == "..":
		return fmt.Errorf("invalid %s %q: must be %s", what, s, allowed)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("invalid %s %q: must be %s", what, s, allowed)
		}
	}
	return nil
}

// UUIDLen is the length of a UUID in its canonical form (8-4-4-4-12 hex digits).
const UUIDLen = 36

// ValidEdgeNodeID reports whether s is an acceptable node id on the edge API
// (AttestNode's node_id, the daemon ids of the edge admin API), and if not, why:
// a UUID in its canonical 36-character form, which ValidNodeID accepts too.
func ValidEdgeNodeID(s string) error { return ValidUUID("edge node id", s) }

// ValidFleetID reports whether s is an acceptable fleet command id (a UUID, as the
// relay makes them), and if not, why.
func ValidFleetID(s string) error { return ValidUUID("fleet command id", s) }

// ValidUUID reports whether s is a UUID in its canonical 36-character form (8-4-4-4-12 hex
// digits, either case), and if not, why, naming the id what ("challenge id"). Every UUID of
// the edge API is checked by it: node ids, fleet command ids, challenge ids, stream ids.
func ValidUUID(what, s string) error {
	if len(s) != UUIDLen {
		// %.64q: do not echo an arbitrarily long value back.
		return fmt.Errorf("%s %.64q is not a UUID", what, s)
	}
	if _, err := uuid.Parse(s); err != nil {
		return fmt.Errorf("%s %q is not a UUID", what, s)
	}
	return nil
}
