// Package sharedpath builds the URL path of a shared file in the relay API
// (SPEC-relay-api.md, "Shared files"): <prefix>/shared-files/<target>/<source>/<file-id>,
// each id escaped as one path element. The relay serves the route bare and under the API
// prefixes Unversioned and Versioned; Keel's own clients (the agent, a relay forwarding to
// its next hop) use Versioned.
package sharedpath

import "net/url"

// API prefixes the relay serves the shared-files route under (besides the bare route).
const (
	// Unversioned is the prefix older Rudder agents use.
	Unversioned = "/rudder/relay-api"
	// Versioned is the prefix newer clients use, and the one Keel sends.
	Versioned = "/rudder/relay-api/1"
)

// Segment is the path element that names the shared-files route.
const Segment = "shared-files"

// Path returns the path, under prefix ("" for the bare route), of the file fileID that
// source shares with target. The ids are path-escaped; they are not validated (package ids
// does that).
func Path(prefix, target, source, fileID string) string {
	return prefix + "/" + Segment + "/" + url.PathEscape(target) + "/" + url.PathEscape(source) + "/" + url.PathEscape(fileID)
}

// FilePath returns Path under Versioned.
func FilePath(target, source, fileID string) string {
	return Path(Versioned, target, source, fileID)
}
