// Package admintoken is the bearer token of the relay's admin listener (admin.token_file):
// 32 random bytes written as 64 lowercase hex digits in a 0600 file the relay creates on
// first start, sent by the CLI as "Authorization: Bearer <token>".
package admintoken

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"github.com/keel-relay/keel/internal/secretfile"
)

// size is the token's length in bytes (its text is twice as long).
const size = 32

// Token is an admin token. The zero Token is "none": Authorized accepts every request.
type Token struct{ text string }

// IsZero reports whether t is no token.
func (t Token) IsZero() bool { return t.text == "" }

// Parse reads a token file's content: 64 lowercase hex digits, optionally followed by one
// newline (as an editor or `echo` would leave it).
func Parse(b []byte) (Token, error) {
	s := strings.TrimSuffix(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	if len(s) != 2*size {
		return Token{}, fmt.Errorf("an admin token is %d hex digits, this one has %d characters", 2*size, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return Token{}, fmt.Errorf("an admin token is lowercase hex digits; character %d is %q", i+1, c)
		}
	}
	return Token{text: s}, nil
}

// Load reads the token file at path (which must not be readable by group or others). An
// error wraps fs.ErrNotExist when there is no such file.
func Load(path string) (Token, error) {
	b, err := secretfile.Read(path, 4*size)
	if err != nil {
		return Token{}, fmt.Errorf("admin token: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return Token{}, fmt.Errorf("admin token %s: %w", path, err)
	}
	return t, nil
}

// LoadOrCreate reads the token file at path, creating it with a new random token when it
// does not exist.
func LoadOrCreate(path string) (Token, error) {
	t, err := Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return t, err
	}
	raw := make([]byte, size)
	if _, err := rand.Read(raw); err != nil {
		return Token{}, fmt.Errorf("admin token: %w", err)
	}
	if _, err := secretfile.Create(path, []byte(hex.EncodeToString(raw)+"\n")); err != nil {
		return Token{}, fmt.Errorf("admin token: %w", err)
	}
	return Load(path) // ours, or the one another process created first
}

// Authorized reports whether r carries t ("Authorization: Bearer <token>", the scheme in any
// case). With no token every request is authorized.
func (t Token) Authorized(r *http.Request) bool {
	if t.IsZero() {
		return true
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), []byte(t.text)) == 1
}

// Set adds t to r; with no token it does nothing.
func (t Token) Set(r *http.Request) {
	if !t.IsZero() {
		r.Header.Set("Authorization", "Bearer "+t.text)
	}
}
