package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/keel-relay/keel/internal/edkey"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", FileName)
	k1, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Fatal("second LoadOrCreate returned another key")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key", len(entries))
	}
}

func TestLoadOrCreateRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	var wg sync.WaitGroup
	got := make([]ed25519.PrivateKey, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = LoadOrCreate(path) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !got[i].Equal(got[0]) {
			t.Fatal("concurrent creators ended with different keys")
		}
	}
}

func TestLoadRefusesOpenPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	path := filepath.Join(t.TempDir(), FileName)
	if _, err := LoadOrCreate(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("err = %v, want a permissions error", err)
	}
}

func TestPublicKeyRoundTrip(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	b, err := edkey.MarshalPublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "issuer.pub")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadPublicKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(pub) {
		t.Fatal("public key changed in the round trip")
	}
}

// TestLoadRefusesTrailingJunk: a key file is exactly one PEM block (package edkey's rule;
// Load used to accept text after the block).
func TestLoadRefusesTrailingJunk(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if _, err := LoadOrCreate(path); err != nil {
		t.Fatal(err)
	}
	good, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(good, "junk\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "trailing data") {
		t.Fatalf("Load: err = %v, want trailing data refused", err)
	}
	if _, err := Install(filepath.Join(t.TempDir(), FileName), append(good, "junk\n"...)); err == nil {
		t.Fatal("Install accepted a key with trailing data")
	}
}

func TestLoadTooBig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.pub")
	if err := os.WriteFile(path, make([]byte, maxFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPublicKey(path); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Fatalf("err = %v", err)
	}
}

// TestInstall: a restore's key replaces the file atomically, with mode 0600, says whether a
// different key was there, and bad input changes nothing.
func TestInstall(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "a", FileName), filepath.Join(dir, "b", FileName)
	want, err := LoadOrCreate(src)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadOrCreate(dst)
	if err != nil {
		t.Fatal(err)
	}
	for i, wantReplaced := range []bool{true, false} {
		replaced, err := Install(dst, pemBytes)
		if err != nil || replaced != wantReplaced {
			t.Fatalf("Install #%d: replaced %v, %v; want %v", i+1, replaced, err, wantReplaced)
		}
		got, err := Load(dst)
		if err != nil || !got.Equal(want) || got.Equal(other) {
			t.Fatalf("Install #%d: the file holds another key (%v)", i+1, err)
		}
	}
	fresh := filepath.Join(dir, "c", "d", FileName)
	if replaced, err := Install(fresh, pemBytes); err != nil || replaced {
		t.Fatalf("Install into a new directory: replaced %v, %v", replaced, err)
	}
	if fi, err := os.Stat(fresh); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Fatalf("installed file: %v, %v; want mode 0600", fi, err)
	}

	pub, _ := edkey.MarshalPublic(want.Public().(ed25519.PublicKey))
	for name, bad := range map[string][]byte{
		"empty":      nil,
		"garbage":    []byte("not a key"),
		"public key": pub,
		"truncated":  pemBytes[:len(pemBytes)/2],
		"trailing":   append(append([]byte{}, pemBytes...), "junk"...),
	} {
		if _, err := Install(dst, bad); err == nil {
			t.Errorf("Install of %s succeeded", name)
		}
		if got, err := Load(dst); err != nil || !got.Equal(want) {
			t.Errorf("after the refused install of %s the file changed (%v)", name, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(dst))
	if len(entries) != 1 {
		t.Errorf("%d files in the key's directory, want 1 (no temporary left)", len(entries))
	}
}
