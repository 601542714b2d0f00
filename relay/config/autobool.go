package config

import (
	"fmt"
	"strings"

	"github.com/keel-relay/keel/internal/confload"
)

// AutoBool is a switch written true, false or "auto" (SwitchAuto: the relay decides from the
// rest of the configuration, as the key's comment in default.yaml says).
type AutoBool int8

// The values of an AutoBool; its zero value is SwitchAuto.
const (
	SwitchAuto AutoBool = 0
	SwitchOn   AutoBool = 1
	SwitchOff  AutoBool = -1
)

const autoBoolExpect = `true, false or "auto"`

// ParseAutoBool reads "auto", "true" or "false" (any case, surrounding spaces ignored;
// also 1/0, yes/no and on/off, as environment variables are often written).
func ParseAutoBool(s string) (AutoBool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto":
		return SwitchAuto, nil
	case "true", "1", "yes", "on":
		return SwitchOn, nil
	case "false", "0", "no", "off":
		return SwitchOff, nil
	}
	return 0, fmt.Errorf("invalid switch %q: want %s", s, autoBoolExpect)
}

// Resolve is the switch's value, auto standing for def.
func (a AutoBool) Resolve(def bool) bool {
	switch a {
	case SwitchOn:
		return true
	case SwitchOff:
		return false
	}
	return def
}

// String is "auto", "true" or "false".
func (a AutoBool) String() string {
	switch a {
	case SwitchOn:
		return "true"
	case SwitchOff:
		return "false"
	}
	return "auto"
}

// encode is the value as the YAML writes it: the bool itself, or "auto".
func (a AutoBool) encode() any {
	if a == SwitchAuto {
		return "auto"
	}
	return a == SwitchOn
}

func toAutoBool(data any) (AutoBool, error) {
	switch x := data.(type) {
	case bool:
		if x {
			return SwitchOn, nil
		}
		return SwitchOff, nil
	case string:
		return ParseAutoBool(x)
	}
	return 0, fmt.Errorf("expected %s, got %s", autoBoolExpect, confload.Describe(data))
}
