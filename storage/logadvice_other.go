//go:build !linux

package storage

// adviseLogMappings does nothing where large page-cache folios are not a concern known to
// Keel (see logAdvice).
func adviseLogMappings(string, bool) {}
