// Package htpasswd reads Apache htpasswd files and checks HTTP Basic credentials against them.
//
// A file holds one "user:hash" entry a line; blank lines and lines starting with '#' are
// ignored. The hash schemes checked are bcrypt ($2y$, $2a$, $2b$), Apache's MD5-crypt
// ($apr1$) and base64 SHA-1 ({SHA}); an entry of any other scheme (crypt DES, plain text,
// $5$/$6$ SHA-crypt...) is kept but never matches, and Unsupported names its user. As in
// Apache's mod_authn_file, the first entry of a user wins and a second ':' ends the hash.
package htpasswd

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/keel-relay/keel/internal/fsutil"
)

// MaxFileSize is the largest htpasswd file read, in bytes.
const MaxFileSize = 4 << 20

// maxLineLen is the longest line of an htpasswd file, in bytes (a bcrypt entry is about
// 60 bytes plus the user name).
const maxLineLen = 8 << 10

// bcryptMaxPassword is the number of password bytes bcrypt uses: Apache's bcrypt
// (crypt_blowfish) ignores the rest, golang.org/x/crypto/bcrypt refuses longer passwords.
const bcryptMaxPassword = 72

// scheme is a hash scheme of an htpasswd entry.
type scheme int

const (
	unsupported scheme = iota
	schemeBcrypt
	schemeAPR1
	schemeSHA
)

// entry is one user's hash.
type entry struct {
	scheme scheme
	hash   string
}

// File is a parsed htpasswd file. It is immutable, safe for concurrent use.
type File struct {
	users map[string]entry
}

// Parse reads an htpasswd file from r (at most MaxFileSize bytes). A line without ':', with an
// empty user or longer than maxLineLen is an error naming its line number.
func Parse(r io.Reader) (*File, error) {
	data, err := fsutil.ReadAllMax(r, "htpasswd file", MaxFileSize)
	if err != nil {
		return nil, err
	}
	f := &File{users: make(map[string]entry)}
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(line) > maxLineLen {
			return nil, fmt.Errorf("htpasswd line %d: longer than %d bytes", n, maxLineLen)
		}
		// Apache's ap_cfg_getline strips leading and trailing white space (and so a '\r').
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		user, rest, ok := bytes.Cut(line, []byte{':'})
		switch {
		case !ok:
			return nil, fmt.Errorf("htpasswd line %d: no ':' between user and hash", n)
		case len(user) == 0:
			return nil, fmt.Errorf("htpasswd line %d: empty user", n)
		}
		if _, seen := f.users[string(user)]; seen {
			continue // Apache reads the file in order and stops at the first entry of a user.
		}
		hash, _, _ := bytes.Cut(rest, []byte{':'})
		f.users[string(user)] = entry{scheme: schemeOf(string(hash)), hash: string(hash)}
	}
	return f, nil
}

// Load reads and parses the htpasswd file at path. A missing file is an error for which
// errors.Is(err, fs.ErrNotExist) holds.
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	f, err := Parse(fh)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// schemeOf tells the scheme of a hash.
func schemeOf(hash string) scheme {
	switch {
	case strings.HasPrefix(hash, "$2y$"), strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"):
		return schemeBcrypt
	case strings.HasPrefix(hash, apr1Magic):
		return schemeAPR1
	case strings.HasPrefix(hash, "{SHA}"):
		return schemeSHA
	}
	return unsupported
}

// Len is the number of users of f.
func (f *File) Len() int { return len(f.users) }

// Verify reports whether password is user's password in f. A user absent from f, or whose
// hash scheme is not supported, never matches.
func (f *File) Verify(user, password string) bool {
	e, ok := f.users[user]
	if !ok {
		return false
	}
	switch e.scheme {
	case schemeBcrypt:
		pw := []byte(password)
		if len(pw) > bcryptMaxPassword {
			pw = pw[:bcryptMaxPassword]
		}
		return bcrypt.CompareHashAndPassword([]byte(e.hash), pw) == nil
	case schemeAPR1:
		salt := strings.TrimPrefix(e.hash, apr1Magic)
		salt, _, _ = strings.Cut(salt, "$")
		return subtle.ConstantTimeCompare([]byte(apr1(password, salt)), []byte(e.hash)) == 1
	case schemeSHA:
		sum := sha1.Sum([]byte(password))
		want := "{SHA}" + base64.StdEncoding.EncodeToString(sum[:])
		return subtle.ConstantTimeCompare([]byte(want), []byte(e.hash)) == 1
	}
	return false
}

// Unsupported returns the users of f whose hash scheme is not supported (they never match),
// sorted.
func (f *File) Unsupported() []string {
	var users []string
	for u, e := range f.users {
		if e.scheme == unsupported {
			users = append(users, u)
		}
	}
	slices.Sort(users)
	return users
}

// apr1Magic starts an Apache MD5-crypt hash.
const apr1Magic = "$apr1$"

// itoa64 is the alphabet of crypt(3)'s base 64 encoding.
const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// apr1 returns the "$apr1$<salt>$<hash>" hash of password with salt (its first 8 bytes used).
//
// The algorithm is Poul-Henning Kamp's FreeBSD MD5-crypt with the magic "$apr1$" instead of
// "$1$", as Apache's apr_md5_encode (apr-util, crypto/apr_md5.c) implements it:
//
//  1. alt = MD5(password + salt + password).
//  2. ctx = MD5 over password + magic + salt, then len(password) bytes of alt (alt repeated),
//     then for each bit of len(password) from the lowest: a zero byte if the bit is 1, else
//     the first byte of password.
//  3. 1000 rounds: round i hashes (password if i odd, else the previous digest), salt if
//     i%3 != 0, password if i%7 != 0, then (the previous digest if i odd, else password).
//  4. The final 16 bytes are written in crypt's base 64, in the byte groups
//     (0,6,12) (1,7,13) (2,8,14) (3,9,15) (4,10,5) (11), each least significant 6 bits first.
func apr1(password, salt string) string {
	if len(salt) > 8 {
		salt = salt[:8]
	}
	pw := []byte(password)

	alt := md5.New()
	alt.Write(pw)
	alt.Write([]byte(salt))
	alt.Write(pw)
	altSum := alt.Sum(nil)

	ctx := md5.New()
	ctx.Write(pw)
	ctx.Write([]byte(apr1Magic))
	ctx.Write([]byte(salt))
	for i := len(pw); i > 0; i -= 16 {
		ctx.Write(altSum[:min(i, 16)])
	}
	for i := len(pw); i != 0; i >>= 1 {
		if i&1 != 0 {
			ctx.Write([]byte{0})
		} else {
			ctx.Write(pw[:1])
		}
	}
	final := ctx.Sum(nil)

	for i := range 1000 {
		r := md5.New()
		if i&1 != 0 {
			r.Write(pw)
		} else {
			r.Write(final)
		}
		if i%3 != 0 {
			r.Write([]byte(salt))
		}
		if i%7 != 0 {
			r.Write(pw)
		}
		if i&1 != 0 {
			r.Write(final)
		} else {
			r.Write(pw)
		}
		final = r.Sum(final[:0])
	}

	out := make([]byte, 0, len(apr1Magic)+len(salt)+1+22)
	out = append(out, apr1Magic...)
	out = append(out, salt...)
	out = append(out, '$')
	to64 := func(v uint32, n int) {
		for ; n > 0; n-- {
			out = append(out, itoa64[v&0x3f])
			v >>= 6
		}
	}
	b := func(i int) uint32 { return uint32(final[i]) }
	to64(b(0)<<16|b(6)<<8|b(12), 4)
	to64(b(1)<<16|b(7)<<8|b(13), 4)
	to64(b(2)<<16|b(8)<<8|b(14), 4)
	to64(b(3)<<16|b(9)<<8|b(15), 4)
	to64(b(4)<<16|b(10)<<8|b(5), 4)
	to64(b(11), 2)
	return string(out)
}
