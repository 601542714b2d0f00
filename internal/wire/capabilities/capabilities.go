// Package capabilities bounds the EdgeCapabilities an edge daemon declares (in AttestNode,
// Hello and CapabilityUpdate). Capabilities are a handful of short strings: its OS and
// architecture, the tools it serves, its mount points and a few labels. The relay keeps
// them with the daemon's challenge and row, so what an unauthenticated caller sends must
// stay small: Check refuses anything beyond a few KiB.
package capabilities

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/keel-relay/keel/internal/wire/edgepb"
)

// The bounds Check enforces.
const (
	// MaxEncodedSize bounds the protobuf encoding of the whole EdgeCapabilities (4 KiB).
	MaxEncodedSize = 4 << 10
	// MaxStringSize bounds os, arch, and each tool name, mount point, label key and label
	// value, in bytes.
	MaxStringSize = 256
	// MaxItems bounds the entries of local_tools, of mount_points and of custom_labels,
	// each.
	MaxItems = 64
)

// ErrTooLarge is wrapped by every error of Check.
var ErrTooLarge = errors.New("capabilities too large")

// Check reports whether c is within the bounds; nil capabilities are. The error names the
// field and the bound it exceeds.
func Check(c *edgepb.EdgeCapabilities) error {
	if c == nil {
		return nil
	}
	for _, l := range []struct {
		field string
		n     int
	}{
		{"local_tools", len(c.GetLocalTools())},
		{"mount_points", len(c.GetMountPoints())},
		{"custom_labels", len(c.GetCustomLabels())},
	} {
		if l.n > MaxItems {
			return fmt.Errorf("%w: %s has %d entries, at most %d", ErrTooLarge, l.field, l.n, MaxItems)
		}
	}
	if err := checkString("os", c.GetOs()); err != nil {
		return err
	}
	if err := checkString("arch", c.GetArch()); err != nil {
		return err
	}
	for i, s := range c.GetLocalTools() {
		if err := checkString(fmt.Sprintf("local_tools[%d]", i), s); err != nil {
			return err
		}
	}
	for i, s := range c.GetMountPoints() {
		if err := checkString(fmt.Sprintf("mount_points[%d]", i), s); err != nil {
			return err
		}
	}
	for k, v := range c.GetCustomLabels() {
		if err := checkString("a custom_labels key", k); err != nil {
			return err
		}
		if err := checkString(fmt.Sprintf("custom_labels[%.32q]", k), v); err != nil {
			return err
		}
	}
	if n := proto.Size(c); n > MaxEncodedSize {
		return fmt.Errorf("%w: %d bytes encoded, at most %d", ErrTooLarge, n, MaxEncodedSize)
	}
	return nil
}

func checkString(field, s string) error {
	if len(s) > MaxStringSize {
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrTooLarge, field, len(s), MaxStringSize)
	}
	return nil
}
