// Package uploadname is the naming of agents' uploads (SPEC-relay-box.md, "Uploads from
// agents"): the three kinds of upload with their URL segments and the root's directories,
// the names accepted for an upload, the names forwarded upstream, and the node id in a
// report's name.
package uploadname

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/keel-relay/keel/internal/wire/ids"
)

// Kind is a kind of agent upload.
type Kind int

// The kinds of agent upload.
const (
	// Inventory is the first inventory of a node not yet accepted (PUT /inventories/).
	Inventory Kind = iota + 1
	// InventoryUpdate is an inventory of an accepted node (PUT /inventory-updates/).
	InventoryUpdate
	// Report is the report of an agent run (PUT /reports/).
	Report
)

// Kinds lists every Kind.
var Kinds = [...]Kind{Inventory, InventoryUpdate, Report}

// kindInfo is what a kind is called.
var kindInfo = [...]struct{ dir, rootSubdir string }{
	Inventory:       {"inventories", "inventories/incoming"},
	InventoryUpdate: {"inventory-updates", "inventories/accepted-nodes-updates"},
	Report:          {"reports", "reports/incoming"},
}

// ParseKind returns the Kind whose URL segment is dir ("inventories", "inventory-updates" or
// "reports").
func ParseKind(dir string) (Kind, bool) {
	for _, k := range Kinds {
		if k.Dir() == dir {
			return k, true
		}
	}
	return 0, false
}

// valid reports whether k is one of Kinds.
func (k Kind) valid() bool { return k >= Inventory && k <= Report }

// Dir is k's URL segment (PUT /<Dir>/<name>), also its queue name in the store; "" for a
// value that is not a Kind.
func (k Kind) Dir() string {
	if !k.valid() {
		return ""
	}
	return kindInfo[k].dir
}

// String is k's Dir, or "Kind(n)" for a value that is not a Kind.
func (k Kind) String() string {
	if !k.valid() {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return k.Dir()
}

// RootSubdir is the directory, relative to a Rudder root server's /var/rudder, where the
// root hands uploads of kind k over to its server: "inventories/incoming",
// "inventories/accepted-nodes-updates" or "reports/incoming"; "" for a value that is not a
// Kind.
func (k Kind) RootSubdir() string {
	if !k.valid() {
		return ""
	}
	return kindInfo[k].rootSubdir
}

// MaxNameLen is the longest upload name accepted, in bytes (a file name's usual limit).
const MaxNameLen = 255

// Check returns an error unless name is acceptable as an upload's name (else the answer is
// 400): not empty, at most MaxNameLen bytes, not "." or "..", without '/' or '\\' (a path
// separator on Windows) and without NUL or other control bytes. Such a name is safe as a
// single path element and as a storage key.
func Check(name string) error {
	switch {
	case name == "":
		return errors.New("empty upload name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("upload name %.32q... is longer than %d bytes", name, MaxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("upload name %q is not a file name", name)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '/' || c == '\\':
			return fmt.Errorf("upload name %q holds a path separator", name)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("upload name %q holds a control byte", name)
		}
	}
	return nil
}

// forwardedInventoryExt are the extensions of the inventory files forwarded upstream (what
// rudder-relayd forwards); others, such as the relay's self-test file "<uuid>.hive", are
// accepted and dropped.
var forwardedInventoryExt = map[string]bool{".gz": true, ".xml": true, ".ocs": true, ".sign": true}

// Forwardable reports whether an upload of kind k named name (that passed Check) is to be
// forwarded upstream: an inventory (of either kind) when its extension is gz, xml, ocs or
// sign; a report when ReportNode can read its node id.
func Forwardable(k Kind, name string) bool {
	if Check(name) != nil {
		return false
	}
	switch k {
	case Inventory, InventoryUpdate:
		return forwardedInventoryExt[path.Ext(name)]
	case Report:
		_, err := ReportNode(name)
		return err == nil
	}
	return false
}

// reportExts are the endings of a report's name, longest first.
var reportExts = []string{".log.gz", ".log.zip", ".log"}

// ReportNode returns the node id in the name of a report file, in one of the forms agents
// use (the datetime is RFC 3339 in UTC, with '_' for ':' where ':' is not allowed in file
// names, as on Windows):
//
//	<datetime>@<node id>.log[.gz|.zip]   2026-12-03T16:06:00+00:00@<uuid>.log.gz
//	<node id>_<datetime>.log[.gz|.zip]   <uuid>_2026-12-03T16_06_00+00_00.log.gz (Rudder 8.1+)
//
// The node id must be valid (ids.ValidNodeID), without '.' in the first form and without
// '_' in the second (rudder-relayd reads them up to those bytes).
func ReportNode(name string) (string, error) {
	if err := Check(name); err != nil {
		return "", err
	}
	base := ""
	for _, ext := range reportExts {
		if b, ok := strings.CutSuffix(name, ext); ok {
			base = b
			break
		}
	}
	if base == "" {
		return "", fmt.Errorf("report name %q does not end in .log, .log.gz or .log.zip", name)
	}
	var node, datetime string
	if d, n, ok := strings.Cut(base, "@"); ok {
		node, datetime = n, d
		if strings.Contains(node, ".") {
			return "", fmt.Errorf("report name %q: node id %q holds a '.'", name, node)
		}
	} else if n, d, ok := strings.Cut(base, "_"); ok {
		node, datetime = n, d
	} else {
		return "", fmt.Errorf("report name %q is neither <datetime>@<node id>.log nor <node id>_<datetime>.log", name)
	}
	if err := ids.ValidNodeID(node); err != nil {
		return "", fmt.Errorf("report name %q: %w", name, err)
	}
	if _, err := time.Parse(time.RFC3339, strings.ReplaceAll(datetime, "_", ":")); err != nil {
		return "", fmt.Errorf("report name %q: datetime %q is not RFC 3339", name, datetime)
	}
	return node, nil
}
