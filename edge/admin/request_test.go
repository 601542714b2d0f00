package admin

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const goodID = "0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4b"

func TestValidNodeID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{goodID, true},
		{strings.ToUpper(goodID), true},
		{"", false},
		{"node1", false},
		{"../../etc/passwd", false},
		{goodID + "0", false},
		{"0b9e2f4a1c3d4e5f8a7b9c0d1e2f3a4b", false},       // no dashes
		{"{0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4b}", false}, // braces
		{"0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4g", false},
		{strings.Repeat("x", 100000), false},
	} {
		err := ValidNodeID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("ValidNodeID(%.50q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadRequest) {
			t.Errorf("ValidNodeID(%.50q): %v does not wrap ErrBadRequest", tc.id, err)
		}
		if err != nil && len(err.Error()) > 200 {
			t.Errorf("ValidNodeID: error too long (%d bytes)", len(err.Error()))
		}
	}
}

func TestParsePairs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		split bool
		want  map[string]string
		err   string
	}{
		{"one", []string{"env=prod"}, false, map[string]string{"env": "prod"}, ""},
		{"several", []string{"env=prod", "site=par-1"}, false, map[string]string{"env": "prod", "site": "par-1"}, ""},
		{"comma split", []string{"env=prod,site=par"}, true, map[string]string{"env": "prod", "site": "par"}, ""},
		{"comma kept", []string{"list=a,b"}, false, map[string]string{"list": "a,b"}, ""},
		{"empty value", []string{"gone="}, false, map[string]string{"gone": ""}, ""},
		{"value with =", []string{"expr=a=b"}, false, map[string]string{"expr": "a=b"}, ""},
		{"none", nil, false, map[string]string{}, ""},
		{"no equals", []string{"env"}, false, nil, "not key=value"},
		{"empty key", []string{"=v"}, false, nil, "tag key"},
		{"bad key", []string{"e nv=x"}, false, nil, "only letters"},
		{"dup", []string{"a=1", "a=2"}, false, nil, "twice"},
		{"control", []string{"a=x\x01"}, false, nil, "control"},
		{"long key", []string{strings.Repeat("k", 64) + "=v"}, false, nil, "1-63"},
		{"long value", []string{"k=" + strings.Repeat("v", 257)}, false, nil, "longer"},
		{"bad utf8", []string{"k=\xff"}, false, nil, "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePairs(tc.args, tc.split)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadRequest) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
	many := make([]string, MaxTags+1)
	for i := range many {
		many[i] = "k" + strings.Repeat("x", i%50) + string(rune('a'+i%26)) + "=v"
	}
	if _, err := ParsePairs(many, false); err == nil {
		t.Error("more than MaxTags pairs accepted")
	}
}

func TestParseInvoke(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want Invoke
		err  string
	}{
		{"node", `{"node":"` + goodID + `","tool":"agent-run"}`,
			Invoke{Node: goodID, Tool: "agent-run", Timeout: DefaultTimeout, Parallel: DefaultParallel}, ""},
		{"tags", `{"tags":{"env":"prod"},"tool":"echo","timeout":"30s","parallel":4,"args":{"classes":"a,b"}}`,
			Invoke{Tags: map[string]string{"env": "prod"}, Tool: "echo", Timeout: 30 * time.Second, Parallel: 4}, ""},
		{"labels", `{"labels":{"site":"x"},"tool":"t"}`,
			Invoke{Labels: map[string]string{"site": "x"}, Tool: "t", Timeout: DefaultTimeout, Parallel: DefaultParallel}, ""},
		{"nowhere", `{"tool":"t"}`, Invoke{}, "say where"},
		{"both", `{"node":"` + goodID + `","tags":{"a":"b"},"tool":"t"}`, Invoke{}, "exclude"},
		{"bad node", `{"node":"n1","tool":"t"}`, Invoke{}, "not a UUID"},
		{"no tool", `{"node":"` + goodID + `"}`, Invoke{}, `"tool"`},
		{"bad tool", `{"node":"` + goodID + `","tool":"rm -rf"}`, Invoke{}, "only letters"},
		{"bad timeout", `{"node":"` + goodID + `","tool":"t","timeout":"soon"}`, Invoke{}, "timeout"},
		{"zero timeout", `{"node":"` + goodID + `","tool":"t","timeout":"0s"}`, Invoke{}, "must be > 0"},
		{"huge timeout", `{"node":"` + goodID + `","tool":"t","timeout":"100h"}`, Invoke{}, "at most"},
		{"negative parallel", `{"tags":{"a":"b"},"tool":"t","parallel":-1}`, Invoke{}, "parallel"},
		{"huge parallel", `{"tags":{"a":"b"},"tool":"t","parallel":100000}`, Invoke{}, "parallel"},
		{"unknown field", `{"node":"` + goodID + `","tool":"t","force":true}`, Invoke{}, "unknown field"},
		{"trailing", `{"node":"` + goodID + `","tool":"t"} {}`, Invoke{}, "after its JSON"},
		{"not json", `node=x`, Invoke{}, "not the expected JSON"},
		{"empty", ``, Invoke{}, "not the expected JSON"},
		{"args not object", `{"node":"` + goodID + `","tool":"t","args":[1]}`, Invoke{}, "not the expected JSON"},
		{"bad tag", `{"tags":{"a b":"c"},"tool":"t"}`, Invoke{}, "only letters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseInvoke(strings.NewReader(tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadRequest) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Node != tc.want.Node || got.Tool != tc.want.Tool || got.Timeout != tc.want.Timeout ||
				got.Parallel != tc.want.Parallel || len(got.Tags) != len(tc.want.Tags) || len(got.Labels) != len(tc.want.Labels) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	big := `{"node":"` + goodID + `","tool":"t","args":{"x":"` + strings.Repeat("a", MaxBody) + `"}}`
	if _, err := ParseInvoke(strings.NewReader(big)); !errors.Is(err, errTooLarge) {
		t.Errorf("body over MaxBody: err = %v, want errTooLarge", err)
	}
}

func TestParseTagsAndConfig(t *testing.T) {
	for _, tc := range []struct {
		body string
		err  string
	}{
		{`{"tags":{"env":"prod"}}`, ""},
		{`{"tags":{}}`, ""},
		{`{}`, "required"},
		{`{"tags":null}`, "required"},
		{`{"tags":{"env":1}}`, "not the expected JSON"},
		{`{"tags":{"":"x"}}`, "tag key"},
		{`{"tags":{"a":"b"},"x":1}`, "unknown field"},
	} {
		_, err := ParseTags(strings.NewReader(tc.body))
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseTags(%s) = %v, want %q", tc.body, err, tc.err)
		}
	}
	for _, tc := range []struct {
		body, delta, err string
	}{
		{`{"delta":{"log": {"level":"debug"}},"version":"v2"}`, `{"log":{"level":"debug"}}`, ""},
		{`{"delta":"text","version":"2026-01-01"}`, `"text"`, ""},
		{`{"version":"v2"}`, "", `"delta" is required`},
		{`{"delta":null,"version":"v2"}`, "", `"delta" is required`},
		{`{"delta":{}}`, "", `"version"`},
		{`{"delta":{},"version":"a b"}`, "", "space"},
		{`{"delta":{},"version":"` + strings.Repeat("v", 200) + `"}`, "", `"version"`},
		{`{"delta":{},"version":"v","extra":1}`, "", "unknown field"},
	} {
		delta, _, err := ParseConfig(strings.NewReader(tc.body))
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseConfig(%s) = %v, want %q", tc.body, err, tc.err)
			continue
		}
		if err == nil && string(delta) != tc.delta {
			t.Errorf("ParseConfig(%s) delta = %s, want %s", tc.body, delta, tc.delta)
		}
	}
}

// FuzzParseRequests: no body makes a parser panic, and what one accepts is within bounds.
func FuzzParseRequests(f *testing.F) {
	for _, s := range []string{
		`{"node":"` + goodID + `","tool":"agent-run","args":{"classes":"a"},"timeout":"5m"}`,
		`{"tags":{"env":"prod"},"labels":{"site":"x"},"tool":"t","parallel":4}`,
		`{"tags":{"a":"b"}}`, `{"delta":{"a":1},"version":"v1"}`, `{}`, `[]`, `null`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if inv, err := ParseInvoke(strings.NewReader(string(b))); err == nil {
			if inv.Tool == "" || inv.Timeout <= 0 || inv.Timeout > MaxTimeout || inv.Parallel < 1 || inv.Parallel > MaxParallel {
				t.Fatalf("accepted out of bounds: %+v", inv)
			}
			if (inv.Node == "") == (len(inv.Tags)+len(inv.Labels) == 0) {
				t.Fatalf("accepted without exactly one target: %+v", inv)
			}
		} else if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("error %v does not wrap ErrBadRequest", err)
		}
		if tags, err := ParseTags(strings.NewReader(string(b))); err == nil {
			if ValidTags(tags) != nil || len(tags) > MaxTags {
				t.Fatalf("accepted bad tags %v", tags)
			}
		}
		if delta, version, err := ParseConfig(strings.NewReader(string(b))); err == nil && (len(delta) == 0 || version == "") {
			t.Fatal("accepted an empty delta or version")
		}
		_, _ = ParsePairs(strings.Split(string(b), " "), true)
		_ = ValidNodeID(string(b))
	})
}
