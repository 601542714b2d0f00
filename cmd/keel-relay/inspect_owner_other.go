//go:build !unix

package main

import "io"

// fixOwnership does nothing where files have no Unix owner (Windows: the service's account
// is given the data directory by its ACL).
func fixOwnership(string, io.Writer) error { return nil }
