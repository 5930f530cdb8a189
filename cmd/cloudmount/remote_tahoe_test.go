package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testCap = "URI:DIR2:aaaaaaaaaaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

func TestParseTahoeSource(t *testing.T) {
	s, err := parseSource("tahoe:backup")
	if err != nil || s.Kind.name != "tahoe" || s.URL.String() != "tahoe:backup" {
		t.Fatalf("tahoe:backup: %+v %v", s, err)
	}
	for _, c := range []struct{ in, want string }{
		{"tahoe:" + testCap, "do not put a capability on the command line"},
		{"tahoe:", "needs a name"},
		{"tahoe:a/b", "one name"},
	} {
		_, err := parseSource(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseSource(%q): %v, want %q", c.in, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "aaaa") {
			t.Errorf("parseSource(%q) repeats the capability: %v", c.in, err)
		}
	}
}

func TestTahoeAliasAndCapFile(t *testing.T) {
	dir := t.TempDir()
	aliases := filepath.Join(dir, "aliases")
	os.WriteFile(aliases, []byte("# comment\nother: URI:DIR2:x:y\nbackup: "+testCap+"\n"), 0o600)
	if cap, err := lookupAlias(aliases, "backup"); err != nil || cap != testCap {
		t.Fatalf("lookupAlias: %q %v", cap, err)
	}
	if _, err := lookupAlias(aliases, "missing"); err == nil || strings.Contains(err.Error(), "URI:") {
		t.Fatalf("missing alias: %v (must fail without showing a capability)", err)
	}

	capFile := filepath.Join(dir, "cap")
	os.WriteFile(capFile, []byte(testCap+"\n"), 0o644)
	if _, err := readCapFile(capFile, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a capfile readable by others: %v", err)
	}
	os.Chmod(capFile, 0o600)
	if cap, err := readCapFile(capFile, nil); err != nil || cap != testCap {
		t.Fatalf("readCapFile: %q %v", cap, err)
	}
	if cap, err := readCapFile("-", strings.NewReader(testCap+"\n")); err != nil || cap != testCap {
		t.Fatalf("readCapFile from stdin: %q %v", cap, err)
	}
	if _, err := readCapFile("-", strings.NewReader("not a cap")); err == nil {
		t.Fatal("a capfile without a capability was taken")
	}
}
