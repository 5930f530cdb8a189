package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/tahoe"
	"github.com/cloudmount/cloudmount/mountutil"
)

// tahoeKind is a Tahoe-LAFS grid: tahoe:ALIAS, a directory capability that
// the alias names in the node's private/aliases, or one from --capfile.
var tahoeKind = backendKind{name: "tahoe", scheme: "tahoe", open: openTahoe}

// parseTahoeSource recognizes tahoe:NAME. The canonical URL is tahoe:NAME:
// it names the mount (cache directory, mount table) and never holds a
// capability.
func parseTahoeSource(raw string) (source, bool, error) {
	prefix, name, ok := strings.Cut(raw, ":")
	if !ok || !strings.EqualFold(prefix, "tahoe") {
		return source{}, false, nil
	}
	if strings.HasPrefix(name, "URI:") || strings.Contains(name, "URI:") {
		return source{}, true, errors.New("do not put a capability on the command line (ps and shell history show it): " +
			"name it with an alias (tahoe add-alias) and mount tahoe:ALIAS, or give it with --capfile FILE (mode 0600) or --capfile - (standard input)")
	}
	switch {
	case name == "":
		return source{}, true, errors.New("SOURCE tahoe: needs a name: tahoe:ALIAS (an alias of the node's private/aliases), or tahoe:NAME with --capfile")
	case strings.ContainsAny(name, "/:") || backends.NameProblem(name) != "":
		return source{}, true, fmt.Errorf("SOURCE tahoe:%s: the alias must be one name, without / or :", backends.Escape(name))
	}
	return source{URL: &url.URL{Scheme: "tahoe", Opaque: name}, Kind: tahoeKind}, true, nil
}

// resolveTahoe finds the node's web API and the capability: from
// --capfile, else from the alias in the node's private/aliases.
func resolveTahoe(f *mountFlags, cfg *mountConfig, src source, stdin io.Reader) error {
	home, err := mountutil.Home()
	if err != nil {
		return fmt.Errorf("home directory (for ~/.tahoe): %w", err)
	}
	nodeDir := f.nodeDir
	switch {
	case nodeDir == "":
		nodeDir = filepath.Join(home, ".tahoe")
	case strings.HasPrefix(nodeDir, "~/"):
		nodeDir = filepath.Join(home, nodeDir[2:])
	}
	if nodeDir, err = filepath.Abs(nodeDir); err != nil {
		return err
	}
	cfg.NodeURL = f.nodeURL
	if cfg.NodeURL == "" {
		b, err := os.ReadFile(filepath.Join(nodeDir, "node.url"))
		if err != nil {
			return fmt.Errorf("the Tahoe node's web API address: %w; is %s a Tahoe client node that has run (tahoe run %s)? Or give --node-url", err, nodeDir, nodeDir)
		}
		cfg.NodeURL = strings.TrimSpace(string(b))
	}
	if u, err := url.Parse(cfg.NodeURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--node-url %q is not an http:// URL", cfg.NodeURL)
	}
	name := src.URL.Opaque
	if f.capFile != "" {
		cfg.Cap, err = readCapFile(f.capFile, stdin)
		return err
	}
	aliases := filepath.Join(nodeDir, "private", "aliases")
	cap, err := lookupAlias(aliases, name)
	if err != nil {
		return err
	}
	cfg.Cap = cap
	return nil
}

// lookupAlias returns the capability of alias in an aliases file ("name:
// CAP" per line).
func lookupAlias(file, alias string) (string, error) {
	fh, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("tahoe:%s: reading the node's aliases: %w (create one with: tahoe create-alias %s)", alias, err, alias)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, cap, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(name) == alias {
			return strings.TrimSpace(cap), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading %s: %w", file, err)
	}
	return "", fmt.Errorf("tahoe:%s: no alias %q in %s (tahoe list-aliases shows them; tahoe create-alias %s makes one)", alias, alias, file, alias)
}

// readCapFile reads a capability from file, which must be private (0600
// or stricter), or from stdin for "-".
func readCapFile(file string, stdin io.Reader) (string, error) {
	var data []byte
	if file == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, 64<<10))
		if err != nil {
			return "", fmt.Errorf("reading the capability from standard input: %w", err)
		}
		data = b
	} else {
		st, err := os.Stat(file)
		if err != nil {
			return "", fmt.Errorf("--capfile: %w", err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("--capfile %s is readable by others (mode %04o): a capability is a secret; chmod 600 %s", file, st.Mode().Perm(), file)
		}
		if data, err = os.ReadFile(file); err != nil {
			return "", fmt.Errorf("--capfile: %w", err)
		}
	}
	cap := strings.TrimSpace(string(data))
	if !strings.HasPrefix(cap, "URI:") || strings.ContainsAny(cap, " \t\n") {
		return "", errors.New("--capfile: the content is not one Tahoe capability (URI:…)")
	}
	return cap, nil
}

// openTahoe connects to the Tahoe node of cfg; tahoe.New checks that the
// node answers and that the capability is a directory.
func openTahoe(ctx context.Context, cfg *mountConfig, log *slog.Logger) (backends.Backend, error) {
	return tahoe.New(ctx, tahoe.Config{NodeURL: cfg.NodeURL, Cap: cfg.Cap, Timeout: cfg.Timeout, Logger: log})
}
