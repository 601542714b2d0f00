package nodemap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
)

// referenceDecode is how a node map file was decoded before the decoder streamed it: the whole
// file unmarshalled into a map of raw entries (the last of an id listed twice wins), the
// {"data": {...}} wrapper recognised on that map, then each entry unmarshalled on its own.
// It returns the entries that decoded and the problems of the others. FuzzParse checks the
// streaming decoder against it.
func referenceDecode(data []byte) (map[string]Node, problems, error) {
	var p problems
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, p, errors.New("empty")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, p, err
	}
	if top == nil {
		return nil, p, errors.New("null")
	}
	raw := top
	if inner, ok := top["data"]; len(top) == 1 && ok && isObject(inner) {
		var wrapped map[string]json.RawMessage
		if err := json.Unmarshal(inner, &wrapped); err != nil {
			return nil, p, err
		}
		if ps, ok := wrapped["policy-server"]; !ok || !isString(ps) {
			raw = wrapped
		}
	}
	nodes := map[string]Node{}
	for id, v := range raw {
		if !validID(id) {
			p.add(catBadID, fmt.Sprintf("%q", id))
			continue
		}
		var e entry
		if !isObject(v) || json.Unmarshal(v, &e) != nil {
			p.add(catNotObject, id)
			continue
		}
		ok := true
		if e.Hostname == nil || *e.Hostname == "" {
			p.add(catNoHostname, id)
			ok = false
		}
		switch {
		case e.PolicyServer == nil || *e.PolicyServer == "":
			p.add(catNoParent, id)
			ok = false
		case !validID(*e.PolicyServer):
			p.add(catBadParent, fmt.Sprintf("%s -> %q", id, *e.PolicyServer))
			ok = false
		}
		if !ok {
			continue
		}
		n := Node{ID: id, Hostname: *e.Hostname, PolicyServer: *e.PolicyServer}
		var kh string
		if json.Unmarshal(e.KeyHash, &kh) == nil {
			n.KeyHash = kh
		}
		nodes[id] = n
	}
	return nodes, p, nil
}

// checkSameAsReference decodes data with the streaming decoder and with referenceDecode and
// fails the test if they disagree on whether it is JSON of the right shape, on the entries that
// decode, or on the problems of the others. Files listing an id twice are left out: the
// streaming decoder refuses them, the reference kept the last entry.
func checkSameAsReference(t *testing.T, data []byte) {
	t.Helper()
	b := newBuilder("root")
	err := b.decode(&scanner{r: bytes.NewReader(data)})
	refNodes, refProblems, refErr := referenceDecode(data)
	if (err == nil) != (refErr == nil) {
		t.Fatalf("streaming decode: %v; reference: %v", err, refErr)
	}
	if err != nil {
		return
	}
	b.text.seal()
	m := &Map{text: b.text, nodes: b.nodes, parents: b.parents}
	got := map[string]Node{}
	for i := range m.nodes {
		n := m.nodeAt(int32(i))
		if _, twice := got[n.ID]; twice || b.broken[n.ID] > 0 {
			return
		}
		got[n.ID] = n
	}
	for _, count := range b.broken {
		if count > 1 {
			return
		}
	}
	if !maps.Equal(got, refNodes) {
		t.Fatalf("entries differ:\nstreaming %v\nreference %v", got, refNodes)
	}
	for cat := range numCats {
		g, r := slices.Compact(slices.Sorted(slices.Values(b.p.byCat[cat]))), slices.Compact(slices.Sorted(slices.Values(refProblems.byCat[cat])))
		if !slices.Equal(g, r) {
			t.Fatalf("%s: streaming %q, reference %q", catNames[cat], g, r)
		}
	}
}
