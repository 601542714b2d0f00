// Package remoterun serves the remote-run part of the relay API: it triggers agent runs on
// the nodes below this relay — through the node's live edge stream, or the configured local
// command, or the sub-relay the node hangs under — and streams their output back, every line
// prefixed by its node id, with one JSON result line per node.
package remoterun

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/keel-relay/keel/internal/wire/classlist"
	"github.com/keel-relay/keel/internal/wire/ids"
)

// MaxBody bounds a remote-run request body (a form that can list thousands of nodes).
const MaxBody = 1 << 20

// Params are a remote-run call's parameters.
type Params struct {
	// All is set for /remote-run/all; otherwise Nodes lists the requested ids (deduplicated,
	// in the order given).
	All   bool
	Nodes []string
	// KeepOutput streams the agents' output; Async answers at once and lets the runs go on.
	KeepOutput bool
	Async      bool
	// Classes are passed to the agents (may be empty).
	Classes []string
}

// ParseError is a bad parameter: the answer is 400 with its message, which names the parameter.
type ParseError struct {
	Param string
	Msg   string
}

func (e *ParseError) Error() string { return e.Param + ": " + e.Msg }

func badParam(param, format string, args ...any) error {
	return &ParseError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads the parameters of a remote-run call from its form body and query.
// kind is "all", "node" (pathNode is the id from the path) or "nodes".
func Parse(r *http.Request, kind, pathNode string) (Params, error) {
	var p Params
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return p, badParam("body", "larger than %d bytes", MaxBody)
		}
		return p, badParam("body", "not a valid form: %v", err)
	}
	var err error
	if p.KeepOutput, err = parseBool(r, "keep_output"); err != nil {
		return p, err
	}
	if p.Async, err = parseBool(r, "asynchronous"); err != nil {
		return p, err
	}
	// Newer Rudder servers send the classes as "conditions"; it wins over "classes".
	classParam := "classes"
	if _, ok := r.Form["conditions"]; ok {
		classParam = "conditions"
	}
	if p.Classes, err = ParseClasses(classParam, r.Form.Get(classParam)); err != nil {
		return p, err
	}
	switch kind {
	case "all":
		p.All = true
	case "node":
		if err := ids.ValidNodeID(pathNode); err != nil {
			return p, badParam("node", "%v", err)
		}
		p.Nodes = []string{pathNode}
	case "nodes":
		v, ok := r.Form["nodes"]
		if !ok || strings.TrimSpace(strings.Join(v, "")) == "" {
			return p, badParam("nodes", "missing: give node ids separated by commas")
		}
		if p.Nodes, err = ParseNodes(strings.Join(v, ",")); err != nil {
			return p, err
		}
	default:
		return p, fmt.Errorf("remoterun: unknown call kind %q", kind)
	}
	return p, nil
}

// parseBool reads a true|false parameter; absent means false.
func parseBool(r *http.Request, name string) (bool, error) {
	v, ok := r.Form[name]
	if !ok {
		return false, nil
	}
	if len(v) != 1 {
		return false, badParam(name, "given %d times", len(v))
	}
	switch v[0] {
	case "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return false, badParam(name, "%q is not true or false", v[0])
	}
}

// ParseClasses splits and checks a comma-separated class list ("" = none) with
// classlist.Split; an error names param.
func ParseClasses(param, s string) ([]string, error) {
	classes, err := classlist.Split(s)
	if err != nil {
		return nil, badParam(param, "%v", err)
	}
	return classes, nil
}

// ParseNodes splits and checks a comma-separated node id list, dropping duplicates.
func ParseNodes(s string) ([]string, error) {
	seen := map[string]bool{}
	var nodes []string
	for id := range strings.SplitSeq(s, ",") {
		id = strings.TrimSpace(id)
		if id == "" || seen[id] {
			continue
		}
		if err := ids.ValidNodeID(id); err != nil {
			return nil, badParam("nodes", "%v", err)
		}
		seen[id] = true
		nodes = append(nodes, id)
	}
	if len(nodes) == 0 {
		return nil, badParam("nodes", "no node id given")
	}
	return nodes, nil
}
