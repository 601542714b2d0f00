package edged

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keel-relay/keel/internal/edkey"
	"github.com/keel-relay/keel/internal/fsutil"
	"github.com/keel-relay/keel/internal/wire/edgetoken"
	"github.com/keel-relay/keel/internal/wire/ids"
)

// Paths are the daemon's credential files. Beside them live the files of an
// interrupted enrollment or rotation (Key+".new", Key+".prev", Token+".new"), the lock
// (Key+".lock") and the generated node id (Key+".node-id").
type Paths struct {
	Key   string // edge.key_file
	Token string // edge.token_file
}

func (p Paths) keyNew() string   { return p.Key + ".new" }
func (p Paths) keyPrev() string  { return p.Key + ".prev" }
func (p Paths) tokenNew() string { return p.Token + ".new" }
func (p Paths) lock() string     { return p.Key + ".lock" }
func (p Paths) nodeID() string   { return p.Key + ".node-id" }

// Credentials are what the daemon authenticates with.
type Credentials struct {
	// NodeID is the token's subject.
	NodeID string
	// Key is the node key the token is bound to.
	Key ed25519.PrivateKey
	// Token is the NodeSecurityToken (a JWT).
	Token string
	// Claims are Token's claims, parsed but not verified (the relay verifies them).
	Claims edgetoken.Claims
}

// RefreshAt returns when the token should be replaced: after frac of its lifetime
// (iat to exp; a token without iat is taken to live one hour).
func (c *Credentials) RefreshAt(frac float64) time.Time {
	exp, iat := c.Claims.Expiry, c.Claims.IssuedAt
	if iat.IsZero() || !iat.Before(exp) {
		iat = exp.Add(-time.Hour)
	}
	return iat.Add(time.Duration(frac * float64(exp.Sub(iat))))
}

// ErrNotEnrolled: there is no usable key and token pair; run `keel-agent edge enroll`.
var ErrNotEnrolled = errors.New("not enrolled (run keel-agent edge enroll)")

// LoadCredentials reads the key and token, taking the lock. When an enrollment or a
// rotation was interrupted, it finishes or undoes it: it takes the token the relay issued
// last (Token+".new" if a change got that far, else Token) together with the key it is
// bound to (Key+".new", Key or Key+".prev"), puts that pair in place and removes the rest.
func LoadCredentials(ctx context.Context, p Paths, log *slog.Logger) (*Credentials, error) {
	unlock, err := lockFile(ctx, p.lock())
	if err != nil {
		return nil, err
	}
	defer unlock()
	return loadLocked(p, log)
}

// parseToken parses a token file's content: one JWT, optionally followed by a newline.
func parseToken(b []byte) (string, edgetoken.Claims, error) {
	tok := strings.TrimRight(string(b), "\r\n")
	_, c, err := edgetoken.Parse(tok)
	if err != nil {
		return "", edgetoken.Claims{}, err
	}
	if c.Subject == "" {
		return "", edgetoken.Claims{}, errors.New("token has no subject (node id)")
	}
	if c.Expiry.IsZero() {
		return "", edgetoken.Claims{}, errors.New("token has no expiry")
	}
	return tok, c, nil
}

// loadLocked is LoadCredentials for a caller holding the lock: it finds the newest token
// whose key is at hand and settles that pair in place.
func loadLocked(p Paths, log *slog.Logger) (*Credentials, error) {
	keyPaths := []string{p.keyNew(), p.Key, p.keyPrev()}
	keys, keyErr := readKeys(keyPaths, p.Key, log)
	var tokErr error
	for _, tp := range []string{p.tokenNew(), p.Token} {
		b, err := fsutil.ReadFileMax(tp, edgetoken.MaxTokenSize+2)
		if err != nil {
			if tp == p.Token {
				tokErr = err
			}
			continue
		}
		tok, claims, err := parseToken(b)
		if err != nil {
			if tp == p.Token {
				tokErr = fmt.Errorf("token file %s: %w", tp, err)
			} else {
				log.Warn("edge: ignoring an unreadable token left by an interrupted rotation", "file", tp, "err", err)
			}
			continue
		}
		for _, kp := range keyPaths {
			k, ok := keys[kp]
			if !ok || !claims.BoundTo(k.Public().(ed25519.PublicKey)) {
				continue
			}
			if err := settle(p, kp, tp, log); err != nil {
				return nil, err
			}
			return &Credentials{NodeID: claims.Subject, Key: k, Token: tok, Claims: claims}, nil
		}
	}
	switch {
	case keyErr != nil:
		return nil, fmt.Errorf("%w: %w", ErrNotEnrolled, keyErr)
	case tokErr != nil:
		return nil, fmt.Errorf("%w: %w", ErrNotEnrolled, tokErr)
	}
	return nil, fmt.Errorf("%w: the token in %s is not bound to the key in %s", ErrNotEnrolled, p.Token, p.Key)
}

// readKeys reads the keys of keyPaths that can be read, by path. Why the key at main
// (edge.key_file) cannot be read is returned; the others are left by an interrupted
// change, and only said in the log when present but unreadable.
func readKeys(keyPaths []string, main string, log *slog.Logger) (map[string]ed25519.PrivateKey, error) {
	keys := map[string]ed25519.PrivateKey{}
	var keyErr error
	for _, kp := range keyPaths {
		k, err := LoadKey(kp)
		switch {
		case err == nil:
			keys[kp] = k
		case kp == main:
			keyErr = err
		case !errors.Is(err, os.ErrNotExist):
			log.Warn("edge: ignoring an unreadable key left by an interrupted rotation", "file", kp, "err", err)
		}
	}
	return keys, keyErr
}

// settle puts the pair (kp, tp) in place as (p.Key, p.Token) and removes what an
// interrupted enrollment or rotation left.
func settle(p Paths, kp, tp string, log *slog.Logger) error {
	if kp != p.Key {
		log.Warn("edge: finishing an interrupted key change", "key", kp, "token", tp)
		if err := fsutil.RenameSync(kp, p.Key); err != nil {
			return fmt.Errorf("edge credentials: %w", err)
		}
	}
	if tp != p.Token {
		if err := fsutil.RenameSync(tp, p.Token); err != nil {
			return fmt.Errorf("edge credentials: %w", err)
		}
	}
	for _, f := range []string{p.keyNew(), p.keyPrev(), p.tokenNew()} {
		if _, err := os.Lstat(f); err == nil {
			log.Warn("edge: removing what an interrupted key change left", "file", f)
		}
		if err := fsutil.RemoveSync(f); err != nil {
			return fmt.Errorf("edge credentials: %w", err)
		}
	}
	return nil
}

// stageKey writes a new key as Key+".new" before the relay is asked to bind it, so a
// crash after the relay said yes does not lose it.
func stageKey(p Paths, key ed25519.PrivateKey) error {
	pemKey, err := edkey.MarshalPrivate(key)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(p.keyNew(), pemKey, 0o600)
}

// staging is a new key staged by stageKey while the relay is asked to bind it.
type staging struct {
	p    Paths
	kept bool
}

// stage stages key (stageKey); the caller defers undo, and calls keep once the relay has
// bound the key (whether or not its token could then be stored).
func stage(p Paths, key ed25519.PrivateKey) (*staging, error) {
	if err := stageKey(p, key); err != nil {
		return nil, err
	}
	return &staging{p: p}, nil
}

// keep leaves the staged key in place: commitLocked installed it, or the relay holds it.
func (s *staging) keep() { s.kept = true }

// undo removes the staged key unless keep was called.
func (s *staging) undo() {
	if !s.kept {
		_ = fsutil.RemoveSync(s.p.keyNew())
	}
}

// commitLocked installs the staged key and the token the relay bound to it: the token is
// stored as Token+".new", the current key is kept as Key+".prev", the staged key and then
// the token are renamed into place, and only then is the previous key removed. Each step
// is durable; LoadCredentials recovers from a crash between any two.
func commitLocked(p Paths, token string) error {
	if err := fsutil.WriteFileAtomic(p.tokenNew(), []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	if old, err := fsutil.ReadFileMax(p.Key, maxKeyFile); err == nil {
		if err := fsutil.WriteFileAtomic(p.keyPrev(), old, 0o600); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("edge credentials: %w", err)
	}
	if err := fsutil.RenameSync(p.keyNew(), p.Key); err != nil {
		return fmt.Errorf("edge credentials: %w", err)
	}
	if err := fsutil.RenameSync(p.tokenNew(), p.Token); err != nil {
		return fmt.Errorf("edge credentials: %w", err)
	}
	if err := fsutil.RemoveSync(p.keyPrev()); err != nil {
		return fmt.Errorf("edge credentials: %w", err)
	}
	return nil
}

// generatedNodeID returns the node id kept in Key+".node-id", creating it (a random UUID)
// the first time.
func generatedNodeID(p Paths) (string, error) {
	b, err := fsutil.ReadFileMax(p.nodeID(), 128)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if ids.ValidEdgeNodeID(id) != nil {
			return "", fmt.Errorf("%s: %q is not a UUID", p.nodeID(), id)
		}
		return id, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	id := uuid.NewString()
	if err := fsutil.WriteFileAtomic(p.nodeID(), []byte(id+"\n"), 0o600); err != nil {
		return "", err
	}
	return id, nil
}
