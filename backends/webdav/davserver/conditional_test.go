package davserver

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSplitTags(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{`*`, []string{"*"}},
		{`"a"`, []string{`"a"`}},
		{`"a", W/"b,c" ,"d"`, []string{`"a"`, `W/"b,c"`, `"d"`}},
		{``, nil},
		{`bare, "x"`, []string{"bare", `"x"`}},
		{`"unterminated`, []string{`"unterminated`}},
	} {
		got := splitTags(c.in)
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("splitTags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMatchList(t *testing.T) {
	const cur = `"abc"`
	for _, c := range []struct {
		values []string
		etag   string
		strong bool
		want   bool
	}{
		{[]string{"*"}, cur, true, true},
		{[]string{"*"}, "", true, false},
		{[]string{`"x", "abc"`}, cur, true, true},
		{[]string{`"x"`, `"abc"`}, cur, true, true},
		{[]string{`W/"abc"`}, cur, true, false}, // If-Match compares strongly
		{[]string{`W/"abc"`}, cur, false, true}, // If-None-Match weakly
		{[]string{`"abc"`}, "", true, false},
		{[]string{`"zzz"`}, cur, false, false},
	} {
		if got := matchList(c.values, c.etag, c.strong); got != c.want {
			t.Errorf("matchList(%q, %q, strong=%v) = %v, want %v", c.values, c.etag, c.strong, got, c.want)
		}
	}
}

// TestConditionalPut drives the If-Match / If-None-Match check with raw
// requests.
func TestConditionalPut(t *testing.T) {
	h, err := New(t.TempDir(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	put := func(name, body string, hdr ...string) (int, string) {
		req, _ := http.NewRequest("PUT", ts.URL+"/"+name, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("ETag")
	}
	if code, _ := put("f", "1", "If-Match", "*"); code != 412 {
		t.Errorf("If-Match * on missing: %d", code)
	}
	if code, _ := put("f", "1", "If-Match", `"x"`); code != 412 {
		t.Errorf("If-Match on missing: %d", code)
	}
	code, etag1 := put("f", "1", "If-None-Match", "*")
	if code != 201 || etag1 == "" {
		t.Fatalf("If-None-Match * on missing: %d %q", code, etag1)
	}
	if code, _ := put("f", "2", "If-None-Match", "*"); code != 412 {
		t.Errorf("If-None-Match * on existing: %d", code)
	}
	if code, _ := put("f", "2", "If-None-Match", etag1); code != 412 {
		t.Errorf("If-None-Match current tag: %d", code)
	}
	if code, _ := put("f", "2", "If-Match", "W/"+etag1); code != 412 {
		t.Errorf("If-Match weak: %d", code)
	}
	code, etag2 := put("f", "22", "If-Match", etag1)
	if code != 201 || etag2 == etag1 {
		t.Fatalf("If-Match current: %d %q", code, etag2)
	}
	if code, _ := put("f", "3", "If-Match", etag1); code != 412 {
		t.Errorf("If-Match stale: %d", code)
	}
	if code, _ := put("f", "333", "If-Match", `"nope", `+etag2); code != 201 {
		t.Errorf("If-Match list holding the current tag: %d", code)
	}
	// The tag checked is the tag handed out by PROPFIND.
	req, _ := http.NewRequest("PROPFIND", ts.URL+"/f", strings.NewReader(`<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>`))
	req.Header.Set("Depth", "0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	get, _ := http.Get(ts.URL + "/f")
	_ = get.Body.Close()
	if tag := get.Header.Get("ETag"); tag == "" || !strings.Contains(string(body), tag) {
		t.Errorf("GET ETag %q not in PROPFIND %s", tag, body)
	}
}

func TestQuotaProtected(t *testing.T) {
	h, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	req, _ := http.NewRequest("PROPPATCH", ts.URL+"/", strings.NewReader(`<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:quota-available-bytes>1</D:quota-available-bytes></D:prop></D:set></D:propertyupdate>`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(body), "403") {
		t.Errorf("setting quota: %s", body)
	}
}

func TestKeyedMutex(t *testing.T) {
	k := newKeyedMutex()
	var wg sync.WaitGroup
	counter := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := k.lock("/same")
			counter++
			unlock()
		}()
	}
	wg.Wait()
	if counter != 50 || len(k.m) != 0 {
		t.Errorf("counter %d, %d keys left", counter, len(k.m))
	}
}

func TestDepthInfinityRefused(t *testing.T) {
	h, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	for depth, want := range map[string]int{"": 403, "infinity": 403, "0": 207, "1": 207} {
		req, _ := http.NewRequest("PROPFIND", ts.URL+"/", nil)
		if depth != "" {
			req.Header.Set("Depth", depth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Depth %q: %d, want %d", depth, resp.StatusCode, want)
		}
	}
}

func TestStatusFor(t *testing.T) {
	for err, want := range map[error]int{
		unix.ENOTSUP: 403, unix.EPERM: 403, unix.EACCES: 403,
		unix.ENOSPC: 507, unix.E2BIG: 507, unix.EDQUOT: 507,
	} {
		if got := statusFor(err); got != want {
			t.Errorf("statusFor(%v) = %d, want %d", err, got, want)
		}
	}
}
