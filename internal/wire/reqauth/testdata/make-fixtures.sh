#!/bin/sh
# Makes the reqauth test fixtures with the openssl command line only: two RSA
# keys and the node-map pin of key.pem (sha256 of its SubjectPublicKeyInfo DER).
# Run from this directory: sh make-fixtures.sh
set -eu
openssl genrsa -out key.pem 2048 2>/dev/null
openssl genrsa -out other.pem 2048 2>/dev/null
printf 'sha256//%s\n' "$(openssl rsa -in key.pem -pubout -outform DER 2>/dev/null |
	openssl dgst -sha256 -binary | base64 -w0)" >key.pin
