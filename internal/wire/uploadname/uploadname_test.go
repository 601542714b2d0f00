package uploadname

import (
	"strings"
	"testing"

	"github.com/keel-relay/keel/internal/wire/ids"
)

const node = "e745a140-40bc-4b86-b6dc-084488fc906b"

func TestKinds(t *testing.T) {
	for _, c := range []struct {
		k               Kind
		dir, rootSubdir string
	}{
		{Inventory, "inventories", "inventories/incoming"},
		{InventoryUpdate, "inventory-updates", "inventories/accepted-nodes-updates"},
		{Report, "reports", "reports/incoming"},
	} {
		if c.k.Dir() != c.dir || c.k.String() != c.dir || c.k.RootSubdir() != c.rootSubdir {
			t.Errorf("%d: Dir %q String %q RootSubdir %q, want %q %q %q", int(c.k),
				c.k.Dir(), c.k.String(), c.k.RootSubdir(), c.dir, c.dir, c.rootSubdir)
		}
		if k, ok := ParseKind(c.dir); !ok || k != c.k {
			t.Errorf("ParseKind(%q) = %v, %v", c.dir, k, ok)
		}
	}
	if len(Kinds) != 3 {
		t.Errorf("Kinds has %d kinds", len(Kinds))
	}
	for _, dir := range []string{"", "inventory", "Reports", "reports/", "/reports", "shared-files", "inventories/incoming"} {
		if k, ok := ParseKind(dir); ok {
			t.Errorf("ParseKind(%q) = %v, want none", dir, k)
		}
	}
	for _, k := range []Kind{0, -1, 4} {
		if k.Dir() != "" || k.RootSubdir() != "" || !strings.HasPrefix(k.String(), "Kind(") {
			t.Errorf("Kind %d: Dir %q RootSubdir %q String %q", int(k), k.Dir(), k.RootSubdir(), k.String())
		}
		if Forwardable(k, node+".ocs") {
			t.Errorf("Kind %d forwards", int(k))
		}
	}
}

func TestCheck(t *testing.T) {
	good := []string{
		node + "_2026-12-03T16:06:00+00:00.ocs.gz",
		node + "_2026-12-03T16:06:00+00:00.ocs.sign",
		"host.example.com-" + node + ".ocs",
		node + ".hive",
		"2026-12-03T16:06:00+00:00@" + node + ".log.gz",
		"...", ".hidden", "a..b", "espace é.txt", "x",
		strings.Repeat("a", MaxNameLen),
	}
	for _, name := range good {
		if err := Check(name); err != nil {
			t.Errorf("Check(%q): %v", name, err)
		}
	}
	bad := []string{
		"", ".", "..", "a/b", "/etc", "../x", "x/", "a\\b", "..\\x",
		"a\x00b", "new\nline", "cr\r", "tab\t", "del\x7f", "\x1b[31m",
		strings.Repeat("a", MaxNameLen+1),
	}
	for _, name := range bad {
		if err := Check(name); err == nil {
			t.Errorf("Check(%q) accepted", name)
		}
	}
}

func TestForwardable(t *testing.T) {
	for _, c := range []struct {
		k    Kind
		name string
		want bool
	}{
		{Inventory, node + "_2026-12-03T16:06:00+00:00.ocs.gz", true},
		{Inventory, node + "_2026-12-03T16:06:00+00:00.ocs.sign", true},
		{InventoryUpdate, node + "_2026-12-03T16:06:00+00:00.ocs.gz", true},
		{InventoryUpdate, node + "_2026-12-03T16:06:00+00:00.ocs.sign", true},
		{Inventory, "host.example.com-" + node + ".ocs", true},
		{Inventory, "inventory.xml", true},
		{Inventory, "x.gz", true},
		{Inventory, node + ".hive", false},
		{Inventory, node, false},
		{Inventory, "x.GZ", false},
		{Inventory, "x.ocs.tmp", false},
		{Inventory, ".gz", true},
		{Inventory, "a/b.gz", false},
		{Inventory, "..", false},
		{Report, "2026-12-03T16:06:00+00:00@" + node + ".log.gz", true},
		{Report, node + "_2026-12-03T16_06_00+00_00.log.gz", true},
		{Report, node + ".log", false},
		{Report, "x.gz", false},
		{Report, node + "_2026-12-03T16:06:00+00:00.ocs.gz", false},
	} {
		if got := Forwardable(c.k, c.name); got != c.want {
			t.Errorf("Forwardable(%v, %q) = %v, want %v", c.k, c.name, got, c.want)
		}
	}
}

func TestReportNode(t *testing.T) {
	for _, c := range []struct{ name, node string }{
		{"2026-12-03T16:06:00+00:00@" + node + ".log.gz", node},
		{"2026-12-03T16:06:00+00:00@" + node + ".log", node},
		{"2026-12-03T16:06:00+00:00@" + node + ".log.zip", node},
		{"2026-12-03T16_06_00+00_00@" + node + ".log.gz", node},
		{"2018-08-24T15:55:01+00:00@root.log", "root"},
		{"2018-08-24T15:55:01+02:00@root.log.gz", "root"},
		{"2018-08-24T15:55:01Z@root.log", "root"},
		{"2018-08-24T15:55:01.123+00:00@root.log", "root"},
		{"2018-08-24T15:55:01+00:00@node_with_underscore.log", "node_with_underscore"},
		{node + "_2026-12-03T16:06:00+00:00.log.gz", node},
		{node + "_2026-12-03T16_06_00+00_00.log.gz", node},
		{node + "_2026-12-03T16_06_00+00_00.log", node},
		{node + "_2026-12-03T16_06_00+00_00.log.zip", node},
		{"root_2026-12-03T16_06_00Z.log", "root"},
		{"node.with.dots_2026-12-03T16_06_00+00_00.log", "node.with.dots"},
	} {
		got, err := ReportNode(c.name)
		if err != nil || got != c.node {
			t.Errorf("ReportNode(%q) = %q, %v; want %q", c.name, got, err, c.node)
		}
	}
	for _, name := range []string{
		"",
		node + ".log",
		"2026-12-03T16:06:00+00:00@" + node + ".lg.gz",
		"2026-12-03T16:06:00+00:00@" + node + ".log.gz.zip",
		"2026-12-03T16:06:00+00:00@" + node + ".gz",
		"2026-12-03T16:06:00+00:00@" + node + ".zip",
		"2026-12-03T16:06:00+00:00@.log.gz",                    // empty node id
		"@" + node + ".log",                                    // no datetime
		"2026-12-03@" + node + ".log",                          // a date only
		"2026-13-03T16:06:00+00:00@" + node + ".log",           // month 13
		"2026-12-03T16:06:00@" + node + ".log",                 // no zone
		"2026-12-03T16:06:00+00:00@no.dots.log",                // '.' in the first form's node id
		"2026-12-03T16:06:00+00:00@a/b.log",                    // path
		"2026-12-03T16:06:00+00:00@..log",                      // node ".": also a '.'
		"2026-12-03T16:06:00+00:00@x y.log",                    // space in node id
		"2026-12-03T16:06:00+00:00@" + node + "\n.log",         // control byte
		"_2026-12-03T16_06_00+00_00.log",                       // empty node id
		node + "_.log",                                         // no datetime
		node + "_2026-12-03.log.gz",                            // a date only
		node + "_yesterday.log",                                // not a datetime
		"no é_2026-12-03T16_06_00+00_00.log",                   // bad node id
		node + "-2026-12-03T16_06_00+00_00.log",                // no separator
		strings.Repeat("a", 250) + "_2026-12-03T16_06_00Z.log", // too long
		"2026-12-03T16:06:00+00:00@" + strings.Repeat("a", 256) + ".log",
	} {
		if got, err := ReportNode(name); err == nil {
			t.Errorf("ReportNode(%q) = %q, want an error", name, got)
		}
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"", ".", "..", "a/b", "a\\b", "x\x00", node + ".ocs", strings.Repeat("a", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if Check(name) != nil {
			for _, k := range Kinds {
				if Forwardable(k, name) {
					t.Fatalf("Forwardable(%v, %q) though Check refuses it", k, name)
				}
			}
			return
		}
		// Accepted: safe as one path element.
		if name == "" || name == "." || name == ".." || len(name) > MaxNameLen ||
			strings.ContainsAny(name, "/\\\x00") {
			t.Fatalf("Check accepted %q", name)
		}
	})
}

func FuzzReportNode(f *testing.F) {
	for _, s := range []string{
		"2026-12-03T16:06:00+00:00@" + node + ".log.gz",
		node + "_2026-12-03T16_06_00+00_00.log",
		"@.log", "_.log.zip", "a@b_c.log",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		n, err := ReportNode(name)
		if err != nil {
			return
		}
		if ids.ValidNodeID(n) != nil {
			t.Fatalf("ReportNode(%q) = invalid node id %q", name, n)
		}
		if !strings.Contains(name, n) || Check(name) != nil || !Forwardable(Report, name) {
			t.Fatalf("ReportNode(%q) = %q, inconsistent", name, n)
		}
	})
}
