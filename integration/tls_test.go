package integration

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends/tlsclient"
	"github.com/cloudmount/cloudmount/backends/tlsclient/tlstest"
)

// TestTLS mounts Apache with mod_ssl over https, with certificates made
// by the test: each failed check of the handshake ends the mount with its
// own message and the option that fixes it; with that option, the mount
// works. One Apache serves every case, on one port per certificate.
func TestTLS(t *testing.T) {
	srv := startApacheTLS(t)
	p := srv.PKI
	dir := t.TempDir()
	rootCA := tlstest.WriteFile(t, filepath.Join(dir, "root.pem"), p.root.CertPEM, 0o644)
	// A chain file in no particular order, with the server's certificate
	// in it too: root, server, intermediate.
	chain := tlstest.WriteFile(t, filepath.Join(dir, "chain.pem"), tlstest.PEM(p.root, p.server, p.inter), 0o644)
	clientCert := tlstest.WriteFile(t, filepath.Join(dir, "client.pem"), p.client.CertPEM, 0o644)
	clientKey := tlstest.WriteFile(t, filepath.Join(dir, "client.key"), p.client.KeyPEM, 0o600)
	openKey := tlstest.WriteFile(t, filepath.Join(dir, "open.key"), p.client.KeyPEM, 0o644)
	serverPin := tlsclient.PinOf(p.server.Cert)
	otherPin := tlsclient.PinOf(p.expired.Cert).String()
	wrongNamePin := tlsclient.PinOf(p.wrongName.Cert).String()
	url := srv.URLs

	t.Run("unknown authority", func(t *testing.T) {
		mountFails(t, srv.Server, MountOptions{URL: url["good"]}, "is not trusted",
			`issued by "CN=cloudmount test root,O=cloudmount tests"`, "pass --ca FILE (-o ca=FILE)")
	})
	t.Run("ca", func(t *testing.T) {
		m := mountServer(t, srv.Server, MountOptions{URL: url["good"], Args: []string{"-o", "ca=" + rootCA}})
		roundTrip(t, m, "over https.txt")
	})
	t.Run("chain file in any order", func(t *testing.T) {
		// This server sends no intermediate: it must come from the file.
		mountFails(t, srv.Server, MountOptions{URL: url["leaf only"], Args: []string{"--ca", rootCA}},
			"is not trusted", `issued by "CN=cloudmount test intermediate`, rootCA+" does not hold it")
		m := mountServer(t, srv.Server, MountOptions{URL: url["leaf only"], Args: []string{"--ca-file", chain}})
		roundTrip(t, m, "through the chain.txt")
	})
	t.Run("expired", func(t *testing.T) {
		mountFails(t, srv.Server, MountOptions{URL: url["expired"], Args: []string{"--ca", rootCA}},
			`("apache, expired") expired on `+p.expired.Cert.NotAfter.UTC().Format("2006-01-02 15:04:05 UTC"),
			"the server needs a new certificate")
	})
	t.Run("wrong name", func(t *testing.T) {
		mountFails(t, srv.Server, MountOptions{URL: url["wrong name"], Args: []string{"--ca", rootCA}},
			"is for www.example.org, not for 127.0.0.1", "mount a URL with one of those names")
	})
	t.Run("pin", func(t *testing.T) {
		mountFails(t, srv.Server, MountOptions{URL: url["good"], Args: []string{"--ca", rootCA, "-o", "pin_sha256=" + otherPin}},
			"does not match --pin-sha256", "its pin is "+serverPin.String())
		// The same key in hex.
		m := mountServer(t, srv.Server, MountOptions{URL: url["good"], Args: []string{"--ca", rootCA, "--pin-sha256", hex.EncodeToString(serverPin[:])}})
		roundTrip(t, m, "pinned.txt")
	})
	t.Run("insecure with a pin", func(t *testing.T) {
		m := mountServer(t, srv.Server, MountOptions{URL: url["wrong name"], Args: []string{"-o", "insecure_tls,pin_sha256=" + wrongNamePin}})
		roundTrip(t, m, "insecure.txt")
		if log := tailFile(m.LogFile, 200); !strings.Contains(log, "level=WARN msg=\"insecure_tls:") {
			t.Errorf("no warning about insecure_tls in the log:\n%s", log)
		}
	})
	t.Run("client certificate", func(t *testing.T) {
		mountFails(t, srv.Server, MountOptions{URL: url["client"], Args: []string{"--ca", rootCA}},
			"requires a TLS client certificate", "--client-cert FILE and --client-key FILE (-o client_cert=FILE,client_key=FILE)")
		mountFails(t, srv.Server, MountOptions{URL: url["client"], Args: []string{"--ca", rootCA, "--client-cert", clientCert, "--client-key", openKey}},
			openKey+" holds a private key but is accessible by group or others (mode 0644): chmod 600 "+openKey)
		m := mountServer(t, srv.Server, MountOptions{URL: url["client"],
			Args: []string{"-o", "ca=" + rootCA + ",client_cert=" + clientCert + ",client_key=" + clientKey}})
		roundTrip(t, m, "with a client certificate.txt")
	})
}

// roundTrip writes a file through the mount, waits until the server has
// it, and reads it back.
func roundTrip(t *testing.T, m *Mount, name string) {
	t.Helper()
	want := "through " + m.opts.URL + "\n"
	if err := os.WriteFile(m.Path(name), []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code, err := m.ctl(time.Minute, "sync", "--timeout", "30s", m.Dir); err != nil || code != 0 {
		t.Fatalf("cloudmount sync: exit %d %v: %s", code, err, out)
	}
	got, err := os.ReadFile(m.Server.Path(name))
	if err != nil || string(got) != want {
		t.Fatalf("on the server: %q, %v; want %q", got, err, want)
	}
	if got, err := os.ReadFile(m.Path(name)); err != nil || string(got) != want {
		t.Fatalf("read back: %q, %v", got, err)
	}
}
