package boxfiles

import (
	"errors"
	"fmt"
	"strings"
)

// errBadPath is cleanPath's refusal (400).
var errBadPath = errors.New("bad path")

// cleanPath returns the name a request path p (percent-decoded, as httprouter's catch-all
// gives it: "/a/b") designates under a served directory, for os.Root: its segments joined
// by "/", without empty segments (a run of slashes is one) or "." ones; a trailing slash is
// kept (the name is then a directory's, never a file's). A segment starting with "..",
// containing '\' or a NUL byte is refused (errBadPath, the SPEC's 400). An encoded slash
// (%2F) was decoded before: it separates segments like any slash, and each is checked.
// The result "" or ending in "/" names a directory.
func cleanPath(p string) (string, error) {
	var b strings.Builder
	b.Grow(len(p))
	rest := p
	for rest != "" {
		seg := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		switch {
		case seg == "" || seg == ".":
			continue
		case strings.HasPrefix(seg, ".."):
			return "", fmt.Errorf("%w: segment %q starts with \"..\"", errBadPath, seg)
		case strings.ContainsAny(seg, "\\\x00"):
			return "", fmt.Errorf("%w: segment %q contains a backslash or a NUL", errBadPath, seg)
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(seg)
	}
	if b.Len() > 0 && strings.HasSuffix(p, "/") {
		b.WriteByte('/')
	}
	return b.String(), nil
}
