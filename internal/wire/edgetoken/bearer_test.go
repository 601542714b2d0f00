package edgetoken

import (
	"errors"
	"strings"
	"testing"
)

func TestParseBearer(t *testing.T) {
	tok, err := Sign(testKey(1), "k1", goodClaims())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, value, want string
	}{
		{"a signed token", Bearer(tok), tok},
		{"scheme in lower case", "bearer " + tok, tok},
		{"scheme in upper case", "BEARER abc", "abc"},
		{"several spaces", "Bearer   abc", "abc"},
		{"every b64token character", "Bearer aZ09-._~+/==", "aZ09-._~+/=="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBearer(tc.value)
			if err != nil || got != tc.want {
				t.Fatalf("ParseBearer(%q) = %q, %v; want %q", tc.value, got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, value, msg string
	}{
		{"empty", "", "want \"Bearer <token>\""},
		{"scheme only", "Bearer", "want \"Bearer <token>\""},
		{"scheme and space", "Bearer ", "no token"},
		{"scheme and spaces", "Bearer    ", "no token"},
		{"another scheme", "Basic dXNlcjpwYXNz", "want \"Bearer <token>\""},
		{"scheme glued to the token", "Bearerabc", "want \"Bearer <token>\""},
		{"a tab after the scheme", "Bearer\tabc", "want \"Bearer <token>\""},
		{"leading space", " Bearer abc", "want \"Bearer <token>\""},
		{"trailing space", "Bearer abc ", "byte 0x20"},
		{"a newline in the token", "Bearer ab\nc", "byte 0x0a"},
		{"two tokens", "Bearer abc def", "byte 0x20"},
		{"a comma", "Bearer abc,def", "byte 0x2c"},
		{"a character after the padding", "Bearer abc=d", "byte 0x64"},
		{"only padding", "Bearer ==", "only padding"},
		{"non-ASCII", "Bearer ab\u00e9", "byte 0xc3"},
		{"NUL", "Bearer ab\x00", "byte 0x00"},
		{"too long", "Bearer " + strings.Repeat("a", MaxTokenSize+1), "at most 8192"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBearer(tc.value)
			if !errors.Is(err, ErrBearer) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("ParseBearer(%q) = %q, %v; want an ErrBearer naming %q", tc.value, got, err, tc.msg)
			}
		})
	}
}

// FuzzParseBearer: ParseBearer never panics; what it accepts is a non-empty b64token that
// Bearer turns back into an equivalent value, and that Parse takes without panicking;
// what it refuses wraps ErrBearer.
func FuzzParseBearer(f *testing.F) {
	tok, _ := Sign(testKey(1), "k1", goodClaims())
	f.Add(Bearer(tok))
	f.Add("bearer a=")
	f.Add("Bearer ")
	f.Add("Basic x")
	f.Add("Bearer a b")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseBearer(s)
		if err != nil {
			if !errors.Is(err, ErrBearer) {
				t.Fatalf("error without ErrBearer: %v", err)
			}
			return
		}
		if got == "" || len(got) > MaxTokenSize || strings.ContainsAny(got, " \t\r\n,") {
			t.Fatalf("ParseBearer(%q) accepted %q", s, got)
		}
		if again, err := ParseBearer(Bearer(got)); err != nil || again != got {
			t.Fatalf("round trip of %q: %q, %v", got, again, err)
		}
		if _, _, err := Parse(got); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("Parse error without ErrMalformed: %v", err)
		}
	})
}
