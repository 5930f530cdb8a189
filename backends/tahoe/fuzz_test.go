package tahoe

import (
	"strings"
	"testing"
)

// FuzzDecodeListing: any reply decodes to a listing or an error, never a
// panic, and never more children than the bound.
func FuzzDecodeListing(f *testing.F) {
	f.Add(`["dirnode", {"children": {"a": ["filenode", {"size": 1, "ro_uri": "URI:LIT:ge", "metadata": {"mtime": 1.5}}]}, "rw_uri": "URI:DIR2:aa:bb"}]`)
	f.Add(`["filenode", {"mutable": true, "size": 10, "ro_uri": "URI:SSK-RO:aa:bb"}]`)
	f.Add(`["unknown", {}]`)
	f.Add(`{"error": "No such child: x"}`)
	f.Fuzz(func(t *testing.T, s string) {
		l, err := decodeListing(strings.NewReader(s), 1<<16, 50, nil)
		if err != nil {
			return
		}
		if l.count > 50 || len(l.children) > l.count {
			t.Errorf("%d children kept of %d counted", len(l.children), l.count)
		}
		for i := range l.children {
			_, _ = entryOf(l.children[i].name, &l.children[i].node)
		}
	})
}

// FuzzParseTime: any number reads to a time within the bounds, or none.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"1700000000.123456", "-1.5", "1.7e9", "1e300", "", "NaN", "99999999999.9999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, ok := parseTime([]byte(s))
		if ok && (tm.Unix() > maxTimeSeconds || tm.Unix() < -maxTimeSeconds) {
			t.Errorf("parseTime(%q) = %v, out of bounds", s, tm)
		}
		if ok {
			back, ok2 := parseTime([]byte(formatTime(tm)))
			if !ok2 || !back.Equal(tm) {
				t.Errorf("parseTime(%q) = %v, which does not round-trip (%v)", s, tm, back)
			}
		}
	})
}

// FuzzNodeMessage: whatever a node answers, the message made of it holds
// no cap.
func FuzzNodeMessage(f *testing.F) {
	f.Add("Traceback (most recent call last):\n  x\nKeyError: 'URI:DIR2:abcdefghijkl:mnopqrstuvwx'")
	f.Add("<html><body><p>No such child: URI%3ADIR2%3Aabcdefgh%3Aijkl</p></body></html>")
	f.Add(`{"error": "ro.URI:CHK:abcdefgh:ijklmnop:1:3:100"}`)
	f.Fuzz(func(t *testing.T, s string) {
		if m := unredacted.FindString(nodeMessage(s)); m != "" {
			t.Errorf("nodeMessage(%q) holds %q", s, m)
		}
	})
}
