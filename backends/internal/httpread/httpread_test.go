package httpread

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cloudmount/cloudmount/backends"
)

func TestParseContentRange(t *testing.T) {
	for _, c := range []struct {
		h                  string
		unknownTotal       bool
		first, last, total int64
		ok                 bool
	}{
		{"bytes 10-19/100", false, 10, 19, 100, true},
		{" bytes 0-0/1 ", false, 0, 0, 1, true},
		{"bytes 10-19/*", false, 0, 0, 0, false},
		{"bytes 10-19/*", true, 10, 19, -1, true},
		{"bytes 10-19/-2", true, 0, 0, 0, false},
		{"bytes -1-19/100", true, 0, 0, 0, false},
		{"bytes 10/100", true, 0, 0, 0, false},
		{"bytes 10-19", true, 0, 0, 0, false},
		{"items 10-19/100", true, 0, 0, 0, false},
	} {
		first, last, total, ok := ParseContentRange(c.h, c.unknownTotal)
		if first != c.first || last != c.last || total != c.total || ok != c.ok {
			t.Errorf("ParseContentRange(%q, %v) = %d, %d, %d, %v; want %d, %d, %d, %v",
				c.h, c.unknownTotal, first, last, total, ok, c.first, c.last, c.total, c.ok)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	f.Add("bytes 10-19/100", true)
	f.Add("bytes 0-0/*", false)
	f.Fuzz(func(t *testing.T, h string, unknownTotal bool) {
		first, last, total, ok := ParseContentRange(h, unknownTotal)
		if ok && (first < 0 || last < 0 || total < -1) {
			t.Errorf("%q: %d, %d, %d accepted", h, first, last, total)
		}
	})
}

func TestExactReader(t *testing.T) {
	for _, c := range []struct {
		name   string
		body   io.Reader
		left   int64
		broken bool
		want   error // nil: reads to io.EOF
	}{
		{"exact", strings.NewReader("0123456789"), 10, false, nil},
		{"unknown", strings.NewReader("0123456789"), -1, false, nil},
		{"short", strings.NewReader("01234"), 10, false, backends.ErrProtocol},
		{"long", strings.NewReader("0123456789x"), 10, false, backends.ErrProtocol},
		{"broken off, passed on", io.MultiReader(strings.NewReader("01"), iotest.ErrReader(io.ErrUnexpectedEOF)), 10, false, io.ErrUnexpectedEOF},
		{"broken off, mapped", io.MultiReader(strings.NewReader("01"), iotest.ErrReader(io.ErrUnexpectedEOF)), 10, true, backends.ErrUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := NewExactReader(c.body, c.left, "test")
			if c.broken {
				r.BrokenOff(backends.ErrUnavailable, "the node failed")
			}
			_, err := io.ReadAll(r)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("ReadAll: %v; want %v", err, c.want)
			}
			if c.want != nil {
				if _, again := r.Read(make([]byte, 1)); c.want != io.ErrUnexpectedEOF && again != err {
					t.Errorf("second Read: %v; want the sticky %v", again, err)
				}
			}
		})
	}
}
