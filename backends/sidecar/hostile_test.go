package sidecar

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/memory"
)

// TestHostileFile: a metadata file that is malformed, too large, of
// another format or full of invalid entries never fails a listing or a
// Stat, never crashes, and gives no metadata it does not validly hold;
// each is logged. A later write replaces it.
func TestHostileFile(t *testing.T) {
	valid := `{"v":"VERSION","mtime":978310861000000001,"mode":420}`
	cases := map[string]string{
		"not JSON":        "\x00\xff garbage {",
		"truncated":       `{"format":"cloudmount-meta/1","entries":{"f":` + valid,
		"other format":    `{"format":"cloudmount-meta/99","entries":{"f":` + valid + `}}`,
		"too large":       `{"format":"cloudmount-meta/1","entries":{},"pad":"` + strings.Repeat("x", MaxFileBytes) + `"}`,
		"wrong types":     `{"format":"cloudmount-meta/1","entries":{"f":{"v":1,"mtime":"now"}}}`,
		"entries a list":  `{"format":"cloudmount-meta/1","entries":[1,2,3]}`,
		"deep nesting":    strings.Repeat("[", 100000) + strings.Repeat("]", 100000),
		"invalid entries": `{"format":"cloudmount-meta/1","entries":{"f":{"v":"VERSION","mode":99999},"../x":` + valid + `,"a/b":` + valid + `,"":` + valid + `}}`,
		"bad hash":        `{"format":"cloudmount-meta/1","entries":{"f":{"v":"VERSION","sha256":"../../etc/passwd"}}}`,
		"bad type":        `{"format":"cloudmount-meta/1","entries":{"f":{"v":"VERSION","type":"blockdev"}}}`,
		"dir and version": `{"format":"cloudmount-meta/1","entries":{"f":{"v":"VERSION","dir":true,"mode":511}}}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			inner := memory.NewWith(bareCaps(true))
			ctx := ctxOf(t)
			e, err := inner.Put(ctx, "f", strings.NewReader("x"), 1, backends.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			body = strings.ReplaceAll(body, "VERSION", e.Version)
			if _, err := inner.Put(ctx, backends.MetaFileName, strings.NewReader(body), int64(len(body)), backends.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			b, logs := wrap(t, inner)
			ents, err := b.List(ctx, "")
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(ents) != 1 || ents[0].Name != "f" {
				t.Fatalf("List: %+v", ents)
			}
			st, err := b.Stat(ctx, "f")
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			for _, got := range []backends.Entry{ents[0], st} {
				if got.Meta.Mode != nil || got.Meta.SHA256 != "" || got.Meta.Type != "" {
					t.Errorf("metadata from an invalid file: %+v", got.Meta)
				}
			}
			if !strings.Contains(logs.String(), "metadata file") {
				t.Errorf("nothing logged: %q", logs.String())
			}
			// A write replaces it with a valid file.
			mt := time.Unix(1e9, 1)
			if _, err := b.SetMeta(ctx, "f", backends.Meta{MTime: &mt}, ""); err != nil {
				t.Fatal(err)
			}
			fresh, _ := wrap(t, inner)
			if e, err := fresh.Stat(ctx, "f"); err != nil || !e.ModTime.Equal(mt) {
				t.Errorf("after a write: %+v, %v; want ModTime %v", e, err, mt)
			}
		})
	}
}

// TestValidEntriesKept: invalid entries are dropped one by one; the valid
// ones beside them count.
func TestValidEntriesKept(t *testing.T) {
	body := `{"format":"cloudmount-meta/1","entries":{"good":{"v":"V","mtime":5,"mode":420},"bad":{"v":"V","mode":65536},"` +
		backends.MetaFileName + `":{"v":"V","mtime":5}}}`
	recs, skipped, err := decode(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 2 || len(recs) != 1 || recs["good"].meta.Mode == nil || *recs["good"].meta.Mode != 0o644 {
		t.Errorf("decode: %d skipped, %+v", skipped, recs)
	}
}

// FuzzDecode: no input makes decode panic, and what it accepts encodes
// and decodes to the same records.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"format":"cloudmount-meta/1","entries":{"f":{"v":"\"e\"","mtime":1,"mode":420,"uid":1,"gid":2,"sha256":"` +
		strings.Repeat("0", 64) + `","type":"fifo"},"d":{"dir":true,"mode":493},".":{"dir":true,"mtime":-5}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"cloudmount-meta/1","entries":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, _, err := decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		out, err := encode(recs)
		if err != nil {
			t.Fatalf("encode of decoded records: %v", err)
		}
		again, skipped, err := decode(bytes.NewReader(out))
		if err != nil || skipped != 0 || !sameRecords(recs, again) {
			t.Fatalf("round trip: %v, %d skipped, %s", err, skipped, fmt.Sprint(len(again)))
		}
	})
}
