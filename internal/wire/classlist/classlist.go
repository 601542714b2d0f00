// Package classlist is the grammar of the class (condition) names passed to an agent run:
// the remote run's classes/conditions parameter (SPEC-relay-api.md, "Remote run") and the
// classes argument of the edge tool agent-run, which the relay fills from it. Each name
// matches Pattern and is at most MaxLen bytes long, as Rudder's own condition names.
package classlist

import (
	"fmt"
	"strings"
)

// MaxLen bounds one class name, in bytes.
const MaxLen = 1024

// Pattern is the grammar of a class name, as error messages say it.
const Pattern = "^[A-Za-z0-9][A-Za-z0-9_]*$"

// Valid reports whether c is an acceptable class name, and if not, why (naming the class
// and the pattern).
func Valid(c string) error {
	if len(c) > MaxLen {
		return fmt.Errorf("class %.32q... is %d characters long, at most %d", c, len(c), MaxLen)
	}
	if c == "" {
		return fmt.Errorf("class %q does not match %s", c, Pattern)
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		ok := b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || (b == '_' && i > 0)
		if !ok {
			return fmt.Errorf("class %q does not match %s", c, Pattern)
		}
	}
	return nil
}

// Clean trims the spaces around each of raw's names, drops the empty ones and checks the
// others with Valid. It returns nil when no name is left.
func Clean(raw []string) ([]string, error) {
	var classes []string
	for _, c := range raw {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if err := Valid(c); err != nil {
			return nil, err
		}
		classes = append(classes, c)
	}
	return classes, nil
}

// Split reads a comma-separated class list ("c1,c2"; "" or only commas and spaces: none)
// with Clean.
func Split(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	return Clean(strings.Split(s, ","))
}
