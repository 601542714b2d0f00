package edgetoken

import (
	"errors"
	"fmt"
	"strings"
)

// AuthorizationKey is the gRPC metadata key that carries a bearer token.
const AuthorizationKey = "authorization"

// ErrBearer: an authorization value is not "Bearer <token>".
var ErrBearer = errors.New("edgetoken: malformed authorization")

// Bearer returns the authorization value that carries token (RFC 6750, section 2.1).
func Bearer(token string) string { return "Bearer " + token }

// ParseBearer returns the token of an authorization value "Bearer <token>" (RFC 6750,
// section 2.1): the scheme, matched without regard to case, then one or more spaces, then a
// b64token (letters, digits, "-._~+/" and trailing "=") of at most MaxTokenSize bytes.
// Anything else (another scheme, no token, characters outside b64token, surrounding
// whitespace) is refused with an error wrapping ErrBearer. The token itself is not parsed.
func ParseBearer(value string) (string, error) {
	const scheme = "Bearer"
	if len(value) <= len(scheme) || !strings.EqualFold(value[:len(scheme)], scheme) || value[len(scheme)] != ' ' {
		return "", fmt.Errorf("%w: want \"Bearer <token>\"", ErrBearer)
	}
	tok := strings.TrimLeft(value[len(scheme):], " ")
	switch {
	case tok == "":
		return "", fmt.Errorf("%w: no token after \"Bearer\"", ErrBearer)
	case len(tok) > MaxTokenSize:
		return "", fmt.Errorf("%w: token of %d bytes, at most %d", ErrBearer, len(tok), MaxTokenSize)
	}
	padding := false
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '=':
			padding = true
		case padding || !isB64TokenChar(c):
			return "", fmt.Errorf("%w: byte %#02x at offset %d of the token", ErrBearer, c, i)
		}
	}
	if padding && tok[0] == '=' {
		return "", fmt.Errorf("%w: the token is only padding", ErrBearer)
	}
	return tok, nil
}

// isB64TokenChar reports whether c may appear in a b64token before its padding.
func isB64TokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/", c) >= 0
}
