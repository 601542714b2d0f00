package edgetoken

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	b64     = base64.RawURLEncoding
	testNow = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	issuerA = "keel-relay:test"
)

// testKey derives an Ed25519 key from a one-byte seed (real keys, reproducible runs).
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// validator knows issuerA with kid "k1" (key seed 1) and kid "" (same key).
func validator(aud string) Validator {
	return Validator{
		Keys: func(iss, kid string) (ed25519.PublicKey, bool) {
			if iss == issuerA && (kid == "k1" || kid == "") {
				return pub(testKey(1)), true
			}
			return nil, false
		},
		Audience: aud,
		Leeway:   time.Minute,
		Now:      func() time.Time { return testNow },
	}
}

func goodClaims() Claims {
	return Claims{
		Issuer: issuerA, Subject: "6f1c1c9e-2a44-4e53-9a71-0c5d1f2e3a4b", Audience: AudienceNode, Tenant: "acme",
		ID: "0b0c3a54-6a77-4bde-8a9e-3f6b1c2d4e5f", Role: "edge", Confirmation: Thumbprint(pub(testKey(7))),
		IssuedAt: testNow.Add(-time.Minute), NotBefore: testNow.Add(-time.Minute), Expiry: testNow.Add(time.Hour),
	}
}

// craft builds a token from raw JSON, signed with key (nil: no signature).
func craft(header, claims string, key ed25519.PrivateKey) string {
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	if key == nil {
		return input + "."
	}
	return input + "." + b64.EncodeToString(ed25519.Sign(key, []byte(input)))
}

const (
	hdr = `{"alg":"EdDSA","typ":"JWT","kid":"k1"}`
	// clm is valid for validator(AudienceNode) at testNow.
	clm = `{"iss":"keel-relay:test","sub":"n1","aud":"edge-node","exp":1778058489,"iat":1778051289}`
)

// TestRFC8037Vectors: the thumbprint of appendix A.3 and the JWS of appendix A.4.
func TestRFC8037Vectors(t *testing.T) {
	d, _ := b64.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	key := ed25519.NewKeyFromSeed(d)
	if x := b64.EncodeToString(pub(key)); x != "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" {
		t.Fatalf("x = %s", x)
	}
	if got := Thumbprint(pub(key)); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("Thumbprint = %s", got)
	}
	const want = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
	if got := signParts(key, []byte(`{"alg":"EdDSA"}`), []byte("Example of Ed25519 signing")); got != want {
		t.Fatalf("signParts = %s\nwant %s", got, want)
	}
	// The payload is not a claims set: Parse refuses it, as a malformed token.
	if _, _, err := Parse(want); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Parse(A.4) = %v", err)
	}
}

func TestSignParseValidateRoundTrip(t *testing.T) {
	c := goodClaims()
	c.IssuedAt = c.IssuedAt.Add(700 * time.Millisecond) // dropped: NumericDate seconds
	tok, err := Sign(testKey(1), "k1", c)
	if err != nil {
		t.Fatal(err)
	}
	h, pc, err := Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	if h.Alg != "EdDSA" || h.Typ != "JWT" || h.Kid != "k1" || h.Crit != nil {
		t.Fatalf("header %+v", h)
	}
	want := goodClaims()
	if pc != want {
		t.Fatalf("Parse claims\n got %+v\nwant %+v", pc, want)
	}
	vc, err := validator(AudienceNode).Validate(tok)
	if err != nil {
		t.Fatal(err)
	}
	if vc != want {
		t.Fatalf("Validate claims %+v", vc)
	}
	if !vc.BoundTo(pub(testKey(7))) || vc.BoundTo(pub(testKey(8))) {
		t.Fatal("BoundTo")
	}
	if (Claims{}).BoundTo(pub(testKey(7))) {
		t.Fatal("a token without cnf is bound to a key")
	}
	// No kid, no optional claims.
	tok, err = Sign(testKey(1), "", Claims{Issuer: issuerA, Audience: AudienceEnrollment, Expiry: testNow.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := b64.DecodeString(tok[:strings.IndexByte(tok, '.')])
	if string(hb) != `{"alg":"EdDSA","typ":"JWT"}` {
		t.Fatalf("header %s", hb)
	}
	if _, err := validator(AudienceEnrollment).Validate(tok); err != nil {
		t.Fatal(err)
	}
}

func TestSignErrors(t *testing.T) {
	if _, err := Sign(testKey(1)[:32], "k", goodClaims()); err == nil || !strings.Contains(err.Error(), "private key is 32 bytes") {
		t.Fatalf("short key: %v", err)
	}
	c := goodClaims()
	c.NotBefore = time.Unix(-5, 0)
	if _, err := Sign(testKey(1), "k", c); err == nil || !strings.Contains(err.Error(), "nbf") {
		t.Fatalf("nbf before 1970: %v", err)
	}
}

func TestValidate(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	hmacTok := func(header string) string {
		input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(clm))
		m := hmac.New(sha256.New, pub(k1)) // the public key as the HMAC secret
		m.Write([]byte(input))
		return input + "." + b64.EncodeToString(m.Sum(nil))
	}
	good := craft(hdr, clm, k1)
	parts := strings.Split(good, ".")
	sig, _ := b64.DecodeString(parts[2])
	withClaims := func(claims string) string { return craft(hdr, claims, k1) }
	tests := []struct {
		name  string
		token string
		aud   string // default AudienceNode
		want  error  // nil: valid
		msg   string
	}{
		{"good", good, "", nil, ""},
		{"aud one-element array", withClaims(`{"iss":"keel-relay:test","aud":["edge-node"],"exp":1778058489}`), "", nil, ""},
		{"no kid", craft(`{"alg":"EdDSA"}`, clm, k1), "", nil, ""},
		{"fractional exp", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1778058489.75}`), "", nil, ""},
		{"expired within leeway", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1778051259}`), "", nil, ""},
		{"nbf within leeway", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1778058489,"nbf":1778051319}`), "", nil, ""},
		{"extra claims and case variants ignored", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1778058489,"EXP":1,"Aud":"x","x":{"y":[1,{"z":null}]}}`), "", nil, ""},

		{"alg none, no signature", craft(`{"alg":"none","typ":"JWT"}`, clm, nil), "", ErrAlgorithm, `alg "none"`},
		{"alg none with an EdDSA signature", craft(`{"alg":"none"}`, clm, k1), "", ErrAlgorithm, `alg "none"`},
		{"alg HS256 keyed with the public key", hmacTok(`{"alg":"HS256","typ":"JWT","kid":"k1"}`), "", ErrAlgorithm, `alg "HS256"`},
		{"alg RS256", craft(`{"alg":"RS256","kid":"k1"}`, clm, k1), "", ErrAlgorithm, `alg "RS256"`},
		{"alg ES256", craft(`{"alg":"ES256","kid":"k1"}`, clm, k1), "", ErrAlgorithm, `alg "ES256"`},
		{"alg lowercase eddsa", craft(`{"alg":"eddsa","kid":"k1"}`, clm, k1), "", ErrAlgorithm, `alg "eddsa"`},
		{"alg missing", craft(`{"typ":"JWT","kid":"k1"}`, clm, k1), "", ErrAlgorithm, `alg ""`},
		{"crit header", craft(`{"alg":"EdDSA","kid":"k1","crit":["exp"],"exp":1}`, clm, k1), "", ErrAlgorithm, "critical"},
		{"crit b64 false", craft(`{"alg":"EdDSA","kid":"k1","b64":false,"crit":["b64"]}`, clm, k1), "", ErrAlgorithm, "critical"},
		{"crit empty", craft(`{"alg":"EdDSA","kid":"k1","crit":[]}`, clm, k1), "", ErrAlgorithm, "critical"},

		{"signed by another key", craft(hdr, clm, k2), "", ErrSignature, "bad signature"},
		{"claims swapped after signing", parts[0] + "." + b64.EncodeToString([]byte(strings.Replace(clm, "n1", "n2", 1))) + "." + parts[2], "", ErrSignature, "bad signature"},
		{"header swapped after signing", b64.EncodeToString([]byte(`{"alg":"EdDSA","kid":"k1"}`)) + "." + parts[1] + "." + parts[2], "", ErrSignature, "bad signature"},
		{"signature truncated", parts[0] + "." + parts[1] + "." + b64.EncodeToString(sig[:63]), "", ErrSignature, "bad signature"},
		{"signature empty", parts[0] + "." + parts[1] + ".", "", ErrSignature, "bad signature"},
		{"signature bit flipped", parts[0] + "." + parts[1] + "." + b64.EncodeToString(append([]byte{sig[0] ^ 1}, sig[1:]...)), "", ErrSignature, "bad signature"},

		{"unknown issuer", withClaims(`{"iss":"someone-else","aud":"edge-node","exp":1778058489}`), "", ErrIssuer, `"someone-else"`},
		{"unknown kid", craft(`{"alg":"EdDSA","kid":"k9"}`, clm, k1), "", ErrIssuer, `kid "k9"`},
		{"no issuer", withClaims(`{"aud":"edge-node","exp":1778058489}`), "", ErrIssuer, "no iss"},

		{"wrong audience", good, AudienceEnrollment, ErrAudience, `"edge-node", want "edge-enrollment"`},
		{"no audience", withClaims(`{"iss":"keel-relay:test","exp":1778058489}`), "", ErrAudience, `"", want "edge-node"`},
		{"validator without audience", good, "-", ErrAudience, "no audience"},

		{"expired", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1778040000}`), "", ErrExpired, "expired"},
		{"exp exactly now minus leeway", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1778051229}`), "", ErrExpired, "expired"},
		{"no exp", withClaims(`{"iss":"keel-relay:test","aud":"edge-node"}`), "", ErrMalformed, "no exp"},
		{"nbf in the future", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1778058489,"nbf":1778051350}`), "", ErrNotYetValid, "nbf"},
		{"iat in the future", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1778058489,"iat":1778051350}`), "", ErrNotYetValid, "iat"},

		{"aud two values", withClaims(`{"iss":"keel-relay:test","aud":["edge-node","x"],"exp":1778058489}`), "", ErrMalformed, "2 values"},
		{"aud empty array", withClaims(`{"iss":"keel-relay:test","aud":[],"exp":1778058489}`), "", ErrMalformed, "0 values"},
		{"aud number", withClaims(`{"iss":"keel-relay:test","aud":5,"exp":1778058489}`), "", ErrMalformed, "neither a string"},
		{"aud null", withClaims(`{"iss":"keel-relay:test","aud":null,"exp":1778058489}`), "", ErrMalformed, "null"},
		{"exp as string", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":"1778058489"}`), "", ErrMalformed, "not a number"},
		{"exp null", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":null}`), "", ErrMalformed, "not a number"},
		{"exp negative", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":-1}`), "", ErrMalformed, "between 1970 and 9999"},
		{"exp huge", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1e400}`), "", ErrMalformed, "between 1970 and 9999"},
		{"iss number", withClaims(`{"iss":5,"aud":"edge-node","exp":1778058489}`), "", ErrMalformed, `"iss"`},
		{"iss null", withClaims(`{"iss":null,"aud":"edge-node","exp":1778058489}`), "", ErrMalformed, `"iss" is null`},
		{"cnf not an object", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1778058489,"cnf":"x"}`), "", ErrMalformed, "not a JSON object"},
		{"duplicate exp", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1,"exp":1778058489}`), "", ErrMalformed, `duplicate member "exp"`},
		{"duplicate escaped iss", withClaims(`{"iss":"keel-relay:test","\u0069ss":"x","aud":"edge-node","exp":1778058489}`), "", ErrMalformed, `duplicate member "iss"`},
		{"duplicate nested", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1778058489,"cnf":{"jkt":"a","jkt":"b"}}`), "", ErrMalformed, `duplicate member "jkt"`},
		{"duplicate alg", craft(`{"alg":"none","alg":"EdDSA","kid":"k1"}`, clm, k1), "", ErrMalformed, `duplicate member "alg"`},
		{"claims invalid UTF-8", withClaims("{\"iss\":\"keel-relay:test\",\"sub\":\"\xff\",\"aud\":\"edge-node\",\"exp\":1778058489}"), "", ErrMalformed, "UTF-8"},
		{"claims not JSON", withClaims(`iss=x`), "", ErrMalformed, "claims"},
		{"claims array", withClaims(`[1]`), "", ErrMalformed, "not a JSON object"},
		{"claims null", withClaims(`null`), "", ErrMalformed, "not a JSON object"},
		{"claims two objects", withClaims(clm + `{}`), "", ErrMalformed, "data after the object"},
		{"claims empty", withClaims(``), "", ErrMalformed, "empty"},
		{"header not JSON", craft(`alg=EdDSA`, clm, k1), "", ErrMalformed, "header"},

		{"padded header", b64.EncodeToString([]byte(hdr+" ")) + "=." + parts[1] + "." + parts[2], "", ErrMalformed, "not base64url"},
		{"padded signature", good + "==", "", ErrMalformed, "signature: byte 0x3d"},
		{"standard base64 alphabet", parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+/", "", ErrMalformed, "not base64url"},
		{"line break", parts[0] + "\n." + parts[1] + "." + parts[2], "", ErrMalformed, "not base64url"},
		{"space", " " + good, "", ErrMalformed, "not base64url"},
		{"non-canonical trailing bits", parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + "B", "", ErrMalformed, "signature"},
		{"impossible length", parts[0] + "." + parts[1] + "." + parts[2] + "AAA", "", ErrMalformed, "signature"},
		{"two parts", parts[0] + "." + parts[1], "", ErrMalformed, "2 dot-separated parts"},
		{"four parts", good + ".", "", ErrMalformed, "4 dot-separated parts"},
		{"empty token", "", "", ErrMalformed, "1 dot-separated parts"},
		{"too long", withClaims(`{"iss":"keel-relay:test","aud":"edge-node","exp":1778058489,"pad":"` + strings.Repeat("x", MaxTokenSize) + `"}`), "", ErrMalformed, "limit 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aud := AudienceNode
			switch tt.aud {
			case "":
			case "-":
				aud = ""
			default:
				aud = tt.aud
			}
			c, err := validator(aud).Validate(tt.token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Validate = %+v, %v; want %v", c, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not say %q", err, tt.msg)
			}
			if c != (Claims{}) {
				t.Fatal("claims returned with an error")
			}
		})
	}
}

func TestValidatorDefaults(t *testing.T) {
	tok, err := Sign(testKey(1), "k1", Claims{Issuer: issuerA, Audience: AudienceNode, Expiry: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	v := validator(AudienceNode)
	v.Now, v.Leeway = nil, -time.Hour // real clock; a negative leeway counts as none
	if _, err := v.Validate(tok); err != nil {
		t.Fatal(err)
	}
	v.Keys = nil
	if _, err := v.Validate(tok); !errors.Is(err, ErrIssuer) {
		t.Fatalf("no Keys: %v", err)
	}
	v.Keys = func(string, string) (ed25519.PublicKey, bool) { return make([]byte, 31), true }
	if _, err := v.Validate(tok); !errors.Is(err, ErrIssuer) || !strings.Contains(err.Error(), "31 bytes") {
		t.Fatalf("short configured key: %v", err)
	}
}

func TestParseHeader(t *testing.T) {
	h, _, err := Parse(craft(`{"alg":"EdDSA","typ":"at+jwt","kid":"k1","crit":["x"],"x":1}`, clm, nil))
	if err != nil {
		t.Fatal(err)
	}
	if h.Alg != "EdDSA" || h.Typ != "at+jwt" || h.Kid != "k1" || len(h.Crit) != 1 || h.Crit[0] != "x" {
		t.Fatalf("header %+v", h)
	}
	if _, _, err := Parse(craft(`{"alg":"EdDSA","crit":"x"}`, clm, nil)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("crit string: %v", err)
	}
	if _, _, err := Parse(craft(`{"alg":["EdDSA"]}`, clm, nil)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("alg array: %v", err)
	}
}

// FuzzParse: Parse never panics; what it refuses wraps ErrMalformed.
func FuzzParse(f *testing.F) {
	tok, _ := Sign(testKey(1), "k1", goodClaims())
	f.Add(tok)
	f.Add(craft(hdr, clm, nil))
	f.Add(craft(`{"alg":"EdDSA","crit":["b64"]}`, `{"aud":["a"],"cnf":{"jkt":"x"},"exp":1.5}`, nil))
	f.Add("..")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		_, _, err := Parse(s)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error without ErrMalformed: %v", err)
		}
		if err == nil && len(s) > MaxTokenSize {
			t.Fatal("oversized token parsed")
		}
	})
}

// FuzzValidate: Validate never panics, every error wraps a sentinel, and no token but a
// genuinely signed one ever validates (no malleability in encoding or signature).
func FuzzValidate(f *testing.F) {
	genuine := map[string]bool{}
	for _, c := range []Claims{goodClaims(), {Issuer: issuerA, Audience: AudienceNode, Expiry: testNow.Add(time.Hour)}} {
		tok, err := Sign(testKey(1), "k1", c)
		if err != nil {
			f.Fatal(err)
		}
		genuine[tok] = true
		f.Add(tok)
	}
	good := craft(hdr, clm, testKey(1))
	genuine[good] = true
	f.Add(good)
	f.Add(craft(`{"alg":"none"}`, clm, nil))
	f.Add(craft(hdr, clm, testKey(2)))
	sentinels := []error{ErrMalformed, ErrAlgorithm, ErrSignature, ErrExpired, ErrNotYetValid, ErrAudience, ErrIssuer}
	v := validator(AudienceNode)
	f.Fuzz(func(t *testing.T, s string) {
		_, err := v.Validate(s)
		if err == nil {
			if !genuine[s] {
				t.Fatalf("forged token validated: %q", s)
			}
			return
		}
		for _, e := range sentinels {
			if errors.Is(err, e) {
				return
			}
		}
		t.Fatalf("error without a sentinel: %v", err)
	})
}

func BenchmarkValidate(b *testing.B) {
	tok, err := Sign(testKey(1), "k1", goodClaims())
	if err != nil {
		b.Fatal(err)
	}
	v := validator(AudienceNode)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Validate(tok); err != nil {
			b.Fatal(err)
		}
	}
}
