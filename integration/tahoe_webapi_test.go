package integration

// The web-API side of the Tahoe tests: the test's own directory on the
// grid (tahoeDir), and reading, writing and listing it through the client
// node's web API, behind the mount's back, for differential checks.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// do makes one web-API request with Accept: text/plain (so that errors
// come back as text, not HTML) and returns the body and status code.
func (g *tahoeGrid) do(method, u string, body []byte) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := g.http.Do(req)
	if err != nil {
		return nil, 0, redactCaps(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, redactCaps(err)
}

// capPattern matches a Tahoe capability.
var capPattern = regexp.MustCompile(`URI(:|%3A|%3a)[A-Za-z0-9:%_-]+`)

// redactCaps removes capabilities from an error (URLs in net/http errors),
// so that test logs do not hold them either.
func redactCaps(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(capPattern.ReplaceAllString(err.Error(), "URI:…"))
}

// mkdirUnlinked makes a new directory that no other links to (POST
// /uri?t=mkdir) and returns its write cap.
func (g *tahoeGrid) mkdirUnlinked() (string, error) {
	b, code, err := g.do(http.MethodPost, g.NodeURL+"uri?t=mkdir", nil)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK || !bytes.HasPrefix(b, []byte("URI:DIR2")) {
		return "", fmt.Errorf("POST /uri?t=mkdir: %d %s", code, clip(b))
	}
	return strings.TrimSpace(string(b)), nil
}

// addAlias adds "alias: cap" to the client node's private/aliases, as
// `tahoe add-alias` does.
func (g *tahoeGrid) addAlias(t testing.TB, alias, cap string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(g.Client.Dir, "private", "aliases"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(f, "%s: %s\n", alias, cap); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// tahoeDir is a directory of the grid that one test owns, with an alias
// in the client node's private/aliases.
type tahoeDir struct {
	// Alias names the directory in private/aliases: tahoe:Alias mounts it.
	Alias string
	// Name is the directory's name in the grid's root directory.
	Name string

	g      *tahoeGrid
	cap    string // the directory's cap (URI:DIR2:…); never printed
	prefix string // a subdirectory of cap ("a/b"), for tahoeDir.at
}

// newDir makes a fresh directory for the test in the grid's root and an
// alias for it.
func (g *tahoeGrid) newDir(t testing.TB) *tahoeDir {
	t.Helper()
	g.mu.Lock()
	g.nextID++
	id := g.nextID
	g.mu.Unlock()
	name := fmt.Sprintf("t%02d-%s", id, regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	b, code, err := g.do(http.MethodPost, g.NodeURL+"uri/"+url.PathEscape(g.root)+"?t=mkdir&replace=false&name="+url.QueryEscape(name), nil)
	if err != nil || code != http.StatusOK || !bytes.HasPrefix(b, []byte("URI:DIR2:")) {
		t.Fatalf("mkdir %s in the grid's root: %d %v %s", name, code, err, clip(b))
	}
	d := &tahoeDir{Alias: strings.ToLower(name), Name: name, g: g, cap: strings.TrimSpace(string(b))}
	g.addAlias(t, d.Alias, d.cap)
	return d
}

// readOnly makes an alias for the read-only cap (URI:DIR2-RO:…) of d and
// returns d seen through it.
func (d *tahoeDir) readOnly(t testing.TB) *tahoeDir {
	t.Helper()
	b, code, err := d.g.do(http.MethodGet, d.url("")+"?t=readonly-uri", nil)
	ro := strings.TrimSpace(string(b))
	if err != nil || code != http.StatusOK || !strings.HasPrefix(ro, "URI:DIR2-RO:") {
		t.Fatalf("GET ?t=readonly-uri of %s: %d %v %s", d.Name, code, err, clip(b))
	}
	r := &tahoeDir{Alias: d.Alias + "-ro", Name: d.Name, g: d.g, cap: ro}
	d.g.addAlias(t, r.Alias, r.cap)
	return r
}

// url is the web-API URL of rel (slash-separated) in d, each segment
// escaped.
func (d *tahoeDir) url(rel string) string {
	u := d.g.NodeURL + "uri/" + url.PathEscape(d.cap)
	rel = strings.Trim(d.prefix+"/"+rel, "/")
	if rel == "" {
		return u
	}
	for _, seg := range strings.Split(rel, "/") {
		u += "/" + url.PathEscape(seg)
	}
	return u
}

// ReadFile reads rel straight from the grid, through the client node's
// web API (GET /uri/$DIRCAP/rel), not through the mount.
func (d *tahoeDir) ReadFile(rel string) ([]byte, error) {
	b, code, err := d.g.do(http.MethodGet, d.url(rel), nil)
	if err != nil {
		return nil, fmt.Errorf("grid: GET %s: %w", rel, err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("grid: GET %s: %d %s", rel, code, clip(b))
	}
	return b, nil
}

// WriteFile puts a file on the grid behind the mount's back (PUT; missing
// directories are created).
func (d *tahoeDir) WriteFile(t testing.TB, rel string, data []byte) {
	t.Helper()
	b, code, err := d.g.do(http.MethodPut, d.url(rel), data)
	if err != nil || (code != http.StatusOK && code != http.StatusCreated) {
		t.Fatalf("grid: PUT %s: %d %v %s", rel, code, err, clip(b))
	}
}

// tahoeChild is one entry of a directory listing on the grid.
type tahoeChild struct {
	// Type is "filenode", "dirnode" or "unknown".
	Type string
	// Size is a file's size (absent for directories and some mutable files).
	Size *int64 `json:"size"`
	// Metadata is the edge's metadata: "tahoe" (linkcrtime, linkmotime)
	// and what clients store, such as "mtime".
	Metadata map[string]any `json:"metadata"`
}

// UnmarshalJSON reads the ["filenode", {...}] pair of a listing.
func (c *tahoeChild) UnmarshalJSON(b []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	if len(pair) != 2 {
		return fmt.Errorf("a child is %d values, want [type, props]", len(pair))
	}
	if err := json.Unmarshal(pair[0], &c.Type); err != nil {
		return err
	}
	type props tahoeChild
	var p props
	if err := json.Unmarshal(pair[1], &p); err != nil {
		return err
	}
	c.Size, c.Metadata = p.Size, p.Metadata
	return nil
}

// List lists the directory rel of d on the grid (GET ?t=json).
func (d *tahoeDir) List(rel string) (map[string]tahoeChild, error) {
	b, code, err := d.g.do(http.MethodGet, d.url(rel)+"?t=json", nil)
	if err != nil {
		return nil, fmt.Errorf("grid: list %q: %w", rel, err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("grid: list %q: %d %s", rel, code, clip(b))
	}
	var node struct {
		Type  string
		Props struct {
			Children map[string]tahoeChild `json:"children"`
		}
	}
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil || len(pair) != 2 {
		return nil, fmt.Errorf("grid: list %q: not a [type, props] pair: %v", rel, err)
	}
	if err := json.Unmarshal(pair[0], &node.Type); err != nil || node.Type != "dirnode" {
		return nil, fmt.Errorf("grid: list %q: a %q, not a dirnode (%v)", rel, node.Type, err)
	}
	if err := json.Unmarshal(pair[1], &node.Props); err != nil {
		return nil, fmt.Errorf("grid: list %q: %v", rel, err)
	}
	return node.Props.Children, nil
}

// edgeMtime is the user "mtime" of a child's edge metadata (float epoch
// seconds, as `tahoe backup` stores it), if there is one.
func (c tahoeChild) edgeMtime() (time.Time, bool) {
	v, ok := c.Metadata["mtime"].(float64)
	if !ok {
		return time.Time{}, false
	}
	sec := int64(v)
	return time.Unix(sec, int64((v-float64(sec))*1e9)), true
}

// at is the subdirectory rel of d, for tahoeDiffTree and reads relative
// to it.
func (d *tahoeDir) at(rel string) *tahoeDir {
	return &tahoeDir{Alias: d.Alias, Name: d.Name + "/" + rel, g: d.g, cap: d.cap, prefix: strings.Trim(d.prefix+"/"+rel, "/")}
}

// sha256Of streams rel from the grid and returns its sha256 and size.
func (d *tahoeDir) sha256Of(rel string) (string, int64, error) {
	req, err := http.NewRequest(http.MethodGet, d.url(rel), nil)
	if err != nil {
		return "", 0, redactCaps(err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
	if err != nil {
		return "", 0, redactCaps(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", 0, fmt.Errorf("grid: GET %s: %d %s", rel, resp.StatusCode, clip(b))
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, resp.Body, make([]byte, 1<<20))
	return hex.EncodeToString(h.Sum(nil)), n, redactCaps(err)
}
