package httpapi

import (
	"net/http"
	"net/url"
	"strings"
)

// CollapseSlashes serves h with every run of slashes in the request path made one
// ("//inventories/x" is "/inventories/x"): relayd sends such paths upstream
// (SPEC-relay-box.md "Transport"). Only slashes change: dot segments stay, so that the
// handlers still see and refuse them. r.URL.RawPath, when set, is collapsed too, and dropped
// when it no longer spells the collapsed path (an escaped slash next to a literal one).
func CollapseSlashes(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "//") && !strings.Contains(r.URL.RawPath, "//") {
			h.ServeHTTP(w, r)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path = collapse(u.Path)
		if u.RawPath != "" {
			u.RawPath = collapse(u.RawPath)
			if p, err := url.PathUnescape(u.RawPath); err != nil || p != u.Path {
				u.RawPath = ""
			}
		}
		r2.URL = &u
		h.ServeHTTP(w, r2)
	})
}

// collapse returns p with every run of '/' made one.
func collapse(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}
