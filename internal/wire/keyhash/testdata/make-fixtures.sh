#!/bin/sh
# Makes the keyhash test fixtures with the openssl command line only:
# two RSA keys and, for key.pem, its pins in all four forms, computed as
# Rudder does: a hash of the SubjectPublicKeyInfo DER of the public key.
# Run from this directory: sh make-fixtures.sh
set -eu
openssl genrsa -out key.pem 2048 2>/dev/null
openssl genrsa -out other.pem 2048 2>/dev/null
spki() { openssl rsa -in key.pem -pubout -outform DER 2>/dev/null; }
{
	printf 'sha256//%s\n' "$(spki | openssl dgst -sha256 -binary | base64 -w0)"
	printf 'sha512//%s\n' "$(spki | openssl dgst -sha512 -binary | base64 -w0)"
	printf 'sha256:%s\n' "$(spki | openssl dgst -sha256 -hex | sed 's/^.*= //')"
	printf 'sha512:%s\n' "$(spki | openssl dgst -sha512 -hex | sed 's/^.*= //')"
} >pins.txt
