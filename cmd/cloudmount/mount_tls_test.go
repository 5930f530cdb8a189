package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloudmount/cloudmount/backends/tlsclient/tlstest"
	"github.com/cloudmount/cloudmount/mountutil"
)

const testPin = "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

func TestParseMountArgsTLS(t *testing.T) {
	f, err := parseMountArgs([]string{"https://h/", "/mnt", "-o",
		"ca=/etc/ca.pem,pin_sha256=" + testPin + ",client_cert=/c.pem,client_key=/k.pem,insecure_tls",
		"--pin-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"})
	if err != nil {
		t.Fatal(err)
	}
	if f.ca != "/etc/ca.pem" || f.clientCert != "/c.pem" || f.clientKey != "/k.pem" || !f.insecureTLS ||
		!slices.Equal(f.pins, []string{"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", testPin}) {
		t.Errorf("parsed as %+v", *f)
	}
}

// TestCLITLSOptions: what is wrong with the TLS options is said before
// any connection, as a usage error (exit 2) where the command line is
// wrong and a failure (exit 1) where a file is.
func TestCLITLSOptions(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	client := tlstest.NewCA(t, "client CA").Issue(t, tlstest.Spec{CommonName: "alice", Client: true})
	cert := tlstest.WriteFile(t, filepath.Join(dir, "client.pem"), client.CertPEM, 0o644)
	openKey := tlstest.WriteFile(t, filepath.Join(dir, "open.key"), client.KeyPEM, 0o644)
	env := []string{"CLOUDMOUNT_PASSWORD=hunter2"}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--pin-sha256", "sha256//short"}, mountutil.ExitUsage, "--pin-sha256: pin \"sha256//short\" is not a SHA-256"},
		{[]string{"--ca", "/a.pem", "--ca-file", "/b.pem"}, mountutil.ExitUsage, "--ca and --ca-file name different files"},
		{[]string{"--client-key", openKey}, mountutil.ExitMountFailed, "needs its certificate: pass --client-cert FILE"},
		{[]string{"--client-cert", cert, "--client-key", openKey}, mountutil.ExitMountFailed,
			openKey + " holds a private key but is accessible by group or others (mode 0644): chmod 600 " + openKey},
		{[]string{"-o", "ca=" + filepath.Join(dir, "missing.pem")}, mountutil.ExitMountFailed, "CA file: open " + filepath.Join(dir, "missing.pem")},
		{[]string{"-o", "ca_file=" + cert + ",ca=" + cert}, mountutil.ExitMountFailed, "cloudmount: cannot reach 127.0.0.1:1"},
	} {
		_, stderr, code := cli(t, env, append([]string{"https://alice@127.0.0.1:1/dav/", mnt, "--cache-dir", t.TempDir(), "--timeout", "5"}, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
		if strings.Contains(stderr, "PRIVATE KEY") || strings.Contains(stderr, "hunter2") {
			t.Errorf("%q: a secret in the output: %q", tt.args, stderr)
		}
	}
	for _, tt := range []struct{ src, opt, want string }{
		{"sftp://alice@127.0.0.1:1/x", "ca=/a.pem", "are for https sources"},
		{"http://127.0.0.1:1/dav/", "pin_sha256=" + testPin, "need an https:// source, not http://"},
		{"http://127.0.0.1:1/dav/", "client_cert=/c.pem", "need an https:// source"},
	} {
		_, stderr, code := cli(t, env, tt.src, mnt, "-o", tt.opt)
		if code != mountutil.ExitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s -o %s: exit %d, stderr %q; want exit 2 and %q", tt.src, tt.opt, code, stderr, tt.want)
		}
	}
}

// TestCLITLSFailure: the daemon's TLS failure reaches the command the
// user ran, with its hint and exit status 1; --insecure-tls gets past it
// with a warning on the terminal and in the log.
func TestCLITLSFailure(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintln(w, "<p>a web page</p>")
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	env := []string{"CLOUDMOUNT_PASSWORD=hunter2"}

	mnt, cacheDir := t.TempDir(), t.TempDir()
	_, stderr, code := cli(t, env, strings.Replace(ts.URL, "https://", "https://alice@", 1)+"/dav/", mnt, "--cache-dir", cacheDir, "--timeout", "5")
	if code != mountutil.ExitMountFailed || !strings.Contains(stderr, "is not trusted") || !strings.Contains(stderr, "--ca FILE (-o ca=FILE)") {
		t.Errorf("exit %d, stderr %q; want exit 1 and the unknown authority", code, stderr)
	}

	mnt, cacheDir = t.TempDir(), t.TempDir()
	_, stderr, code = cli(t, env, strings.Replace(ts.URL, "https://", "https://alice@", 1)+"/dav/", mnt, "--cache-dir", cacheDir,
		"--timeout", "5", "-o", "insecure_tls")
	if code != mountutil.ExitMountFailed || !strings.Contains(stderr, "not a WebDAV collection") {
		t.Errorf("exit %d, stderr %q; want exit 1 past the handshake", code, stderr)
	}
	if !strings.Contains(stderr, "warning: insecure_tls") {
		t.Errorf("no warning on the terminal: %q", stderr)
	}
	logData, err := os.ReadFile(filepath.Join(cacheDir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logData), "level=WARN msg=\"insecure_tls:") {
		t.Errorf("no warning in the log:\n%s", logData)
	}
}
