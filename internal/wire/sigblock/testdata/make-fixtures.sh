#!/bin/sh
# Makes the sigblock test fixtures with the openssl command line only, the way
# a Rudder agent signs a shared file: an RSA key, a file, and for each
# algorithm a ".sign" block whose digest is "openssl dgst -<alg> -sign" of the
# file and whose short_pubkey is the base64 PKCS#1 RSAPublicKey DER of the key.
# Run from this directory: sh make-fixtures.sh
set -eu

openssl genrsa -out key.pem 2048 2>/dev/null
openssl genrsa -out key4096.pem 4096 2>/dev/null
openssl rsa -in key.pem -pubout -out pub.pem 2>/dev/null

# Binary content: empty lines, CR LF, a NUL and a non-UTF-8 byte.
printf 'first line\n\n\r\n\nheader=rudder-signature-v1\n\000\377 end' >file

hexof() { sed 's/^.*= //'; }

# sign KEY ALG OUT: writes the block for "file" signed with KEY and ALG.
sign() {
	{
		echo "header=rudder-signature-v1"
		echo "algorithm=$2"
		echo "digest=$(openssl dgst -"$2" -sign "$1" -hex file | hexof)"
		echo "hash_value=$(openssl dgst -"$2" -hex file | hexof)"
		echo "short_pubkey=$(openssl rsa -in "$1" -RSAPublicKey_out -outform DER 2>/dev/null | base64 -w0)"
		echo "hostname=node1.example.org"
		echo "keydate=2024-05-06 07:08:09.123456789 +0200"
		echo "keyid=0A1B2C3D"
	} >"$3"
}

sign key.pem sha1 file.sha1.sign
sign key.pem sha256 file.sha256.sign
sign key.pem sha512 file.sha512.sign
sign key4096.pem sha512 file.sha512-4096.sign
