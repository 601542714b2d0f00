package confload

import (
	"errors"
	"fmt"
	"strings"
)

// IsHostName reports whether s is a plausible DNS host name.
func IsHostName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// CheckCommandArg checks argument i of a command list (argv, never a shell string): not
// empty, no NUL byte, and every "{...}" one of placeholders (written with their braces,
// such as "{classes}"); the program (i == 0) has no placeholder at all. Unpaired braces
// are literal.
func CheckCommandArg(i int, arg string, placeholders ...string) error {
	switch {
	case arg == "":
		return errors.New("must not be empty")
	case strings.IndexByte(arg, 0) >= 0:
		return fmt.Errorf("%q contains a NUL byte", arg)
	}
	for rest := arg; ; {
		_, after, ok := strings.Cut(rest, "{")
		if !ok {
			return nil
		}
		name, after, ok := strings.Cut(after, "}")
		if !ok {
			return nil
		}
		ph := "{" + name + "}"
		known := false
		for _, p := range placeholders {
			known = known || p == ph
		}
		switch {
		case !known:
			return fmt.Errorf("unknown placeholder %q (use %s)", ph, orList(placeholders))
		case i == 0:
			return fmt.Errorf("the program must not contain a placeholder, got %q", arg)
		}
		rest = after
	}
}

// orList joins items as "a", "a or b", "a, b or c".
func orList(items []string) string {
	switch len(items) {
	case 0:
		return "none"
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
