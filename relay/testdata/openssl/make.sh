#!/usr/bin/env bash
# Regenerates the openssl fixture used by relay/api_test.go (TestOpensslFixture): an RSA key,
# a small binary file, and the two signature blocks an agent would write for it, made with
# the openssl command line only, the way Rudder's agents make them. Run it from anywhere:
#
#	bash relay/testdata/openssl/make.sh
#
# Outputs (committed):
#	key.pem          the source node's RSA private key (PKCS#8 PEM, test only)
#	file.bin         the shared file: binary, with "\r", empty lines and NUL bytes
#	file.bin.sha256  hex SHA-256 of file.bin (what HEAD ?hash= and the ETag must be)
#	file.bin.sha512  hex SHA-512 of file.bin
#	file.sign        the sha256 signature block (Rudder's .sign layout, no ttl line)
#	file.sha512.sign the sha512 signature block
#	keyhash.b64      the node map pin: sha256//<base64 of SHA-256 of the SPKI DER> (Rudder 7)
#	keyhash.hex      the same pin as sha256:<hex> (Rudder 6)
# A PUT body is "echo | cat file.sign - file.bin": the block, an empty line, the file.
set -euo pipefail
cd "$(dirname "$0")"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem 2>/dev/null

# Bytes chosen to trip a careless reader: CRLF, an empty line and a line that looks like a
# signature block header after it, NUL bytes, bytes that are not UTF-8, no final newline.
printf 'first line\r\n\r\n\nheader=rudder-signature-v1\n\0\0\0NUL\0\n\r\r\n\377\376\200 not utf-8\n\n\ttab\tlast line, no newline' > file.bin

short_pubkey=$(openssl rsa -in key.pem -RSAPublicKey_out -outform DER 2>/dev/null | openssl base64 -A)
openssl rsa -in key.pem -pubout -outform DER 2>/dev/null | openssl dgst -sha256 -binary | openssl base64 -A |
	sed 's|^|sha256//|' > keyhash.b64
openssl rsa -in key.pem -pubout -outform DER 2>/dev/null | openssl dgst -sha256 -r | cut -d' ' -f1 |
	sed 's|^|sha256:|' > keyhash.hex

for alg in sha256 sha512; do
	openssl dgst -"$alg" -r file.bin | cut -d' ' -f1 > "file.bin.$alg"
	# "openssl dgst -sign -hex" prints "RSA-SHA2-256(file.bin)= <hex>": keep the hex.
	digest=$(openssl dgst -"$alg" -sign key.pem -hex file.bin | sed 's/^.*= //')
	out=file.sign
	[ "$alg" = sha256 ] || out=file.$alg.sign
	{
		echo "header=rudder-signature-v1"
		echo "algorithm=$alg"
		echo "digest=$digest"
		echo "hash_value=$(cat "file.bin.$alg")"
		echo "short_pubkey=$short_pubkey"
		echo "hostname=fixture.keel.test"
		echo "keydate=2026-01-02 03:04:05.678901234 +0100"
		echo "keyid=4B45454C"
	} > "$out"
	# Check the extracted hex with openssl itself: PKCS#1 v1.5 signatures are deterministic, so
	# the binary signature must verify and be the same bytes.
	tmp=$(mktemp)
	openssl dgst -"$alg" -sign key.pem -out "$tmp" file.bin
	openssl dgst -"$alg" -verify <(openssl rsa -in key.pem -pubout 2>/dev/null) -signature "$tmp" file.bin >/dev/null
	[ "$(od -An -v -tx1 "$tmp" | tr -d ' \n')" = "$digest" ] || { echo "digest extraction failed" >&2; exit 1; }
	rm -f "$tmp"
done
echo "fixture regenerated in $(pwd)"
