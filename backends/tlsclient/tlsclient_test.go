package tlsclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/tlsclient/tlstest"
)

// pki is a root CA, an intermediate it signed, and certificates the
// intermediate signed, for 127.0.0.1 unless named otherwise.
type pki struct {
	root, inter                      *tlstest.Cert
	leaf, expired, notYet, wrongName *tlstest.Cert
	clientCA, client, strangerClient *tlstest.Cert
	selfSigned                       *tlstest.Cert
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{root: tlstest.NewCA(t, "cloudmount test root")}
	p.inter = p.root.Issue(t, tlstest.Spec{CommonName: "cloudmount test intermediate", CA: true})
	p.leaf = p.inter.Issue(t, tlstest.Loopback("good server"))
	old := tlstest.Loopback("old server")
	old.NotBefore, old.NotAfter = time.Now().Add(-72*time.Hour), time.Now().Add(-48*time.Hour)
	p.expired = p.inter.Issue(t, old)
	young := tlstest.Loopback("young server")
	young.NotBefore = time.Now().Add(48 * time.Hour)
	young.NotAfter = young.NotBefore.Add(time.Hour)
	p.notYet = p.inter.Issue(t, young)
	p.wrongName = p.inter.Issue(t, tlstest.Spec{CommonName: "www", DNSNames: []string{"www.example.org", "example.org"}})
	p.clientCA = tlstest.NewCA(t, "cloudmount client CA")
	p.client = p.clientCA.Issue(t, tlstest.Spec{CommonName: "alice", Client: true})
	p.strangerClient = tlstest.NewCA(t, "stranger CA").Issue(t, tlstest.Spec{CommonName: "mallory", Client: true})
	p.selfSigned = tlstest.SelfSigned(t, tlstest.Loopback("lonely server"))
	return p
}

// startTLS starts an https server with cert (and chain after it); with
// clientCA set, it requires a client certificate that clientCA signed.
func startTLS(t *testing.T, cert *tlstest.Cert, chain []*tlstest.Cert, clientCA *tlstest.Cert) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLSCertificate(chain...)}}
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.Cert)
		ts.TLS.ClientAuth, ts.TLS.ClientCAs = tls.RequireAndVerifyClientCert, pool
	}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

// get fetches url with the tls.Config of s; the error is Explain's where
// it explains one.
func get(t *testing.T, s Settings, u string) error {
	t.Helper()
	conf, err := s.Config()
	if err != nil {
		t.Fatalf("Config: %v", err)
	}
	tr := &http.Transport{TLSClientConfig: conf}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		host := hostOf(t, u)
		if e := s.Explain(err, host); e != nil {
			return e
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if string(body) != "hello" {
		t.Fatalf("got %q", body)
	}
	return nil
}

func hostOf(t *testing.T, u string) string {
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Host
}

// file writes data into a fresh file of the test with the given mode.
func file(t *testing.T, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	return tlstest.WriteFile(t, filepath.Join(t.TempDir(), name), data, mode)
}

// TestChainOrder: a CA file holding root and intermediate in any order
// (with the server's own certificate among them, or not) lets the client
// verify a server that sends only its own certificate.
func TestChainOrder(t *testing.T) {
	p := newPKI(t)
	ts := startTLS(t, p.leaf, nil, nil)
	for _, tt := range []struct {
		name  string
		certs []*tlstest.Cert
	}{
		{"root, intermediate", []*tlstest.Cert{p.root, p.inter}},
		{"intermediate, root", []*tlstest.Cert{p.inter, p.root}},
		{"leaf, root, intermediate", []*tlstest.Cert{p.leaf, p.root, p.inter}},
		{"root, leaf, intermediate", []*tlstest.Cert{p.root, p.leaf, p.inter}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ca := file(t, "chain.pem", tlstest.PEM(tt.certs...), 0o644)
			if err := get(t, Settings{CAFile: ca}, ts.URL); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("root alone", func(t *testing.T) {
		// The server leaves the intermediate out and the file lacks it.
		ca := file(t, "root.pem", p.root.CertPEM, 0o644)
		err := get(t, Settings{CAFile: ca}, ts.URL)
		wantErr(t, err, "not trusted", `"CN=cloudmount test intermediate,O=cloudmount tests"`, ca+" does not hold it")
	})
}

// TestCAFileErrors: a CA file that cannot serve is an error naming it.
func TestCAFileErrors(t *testing.T) {
	p := newPKI(t)
	for _, tt := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "holds no PEM certificate"},
		{"a key only", p.leaf.KeyPEM, "holds no PEM certificate"},
		{"broken certificate", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "certificate 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ca := file(t, "ca.pem", tt.data, 0o644)
			_, err := Settings{CAFile: ca}.Config()
			wantErr(t, err, ca, tt.want)
		})
	}
	_, err := Settings{CAFile: filepath.Join(t.TempDir(), "missing.pem")}.Config()
	wantErr(t, err, "CA file", "no such file")
}

// TestClientKeyFile: the file with the client key must be private (as
// ssh keys and the secrets file), hold a key and have no passphrase.
func TestClientKeyFile(t *testing.T) {
	p := newPKI(t)
	cert := file(t, "client.pem", p.client.CertPEM, 0o644)
	both := append(append([]byte{}, p.client.CertPEM...), p.client.KeyPEM...)
	for _, tt := range []struct {
		name      string
		cert, key string
		want      []string // nil: accepted
	}{
		{"0600 key", cert, file(t, "key.pem", p.client.KeyPEM, 0o600), nil},
		{"0400 key", cert, file(t, "key.pem", p.client.KeyPEM, 0o400), nil},
		{"key in the certificate file", file(t, "both.pem", both, 0o600), "", nil},
		{"0644 key", cert, file(t, "key.pem", p.client.KeyPEM, 0o644), []string{"accessible by group or others", "mode 0644", "chmod 600"}},
		{"0640 key", cert, file(t, "key.pem", p.client.KeyPEM, 0o640), []string{"mode 0640", "chmod 600"}},
		{"0660 key", cert, file(t, "key.pem", p.client.KeyPEM, 0o660), []string{"mode 0660"}},
		{"0644 certificate with the key", file(t, "both.pem", both, 0o644), "", []string{"mode 0644"}},
		{"no key in the certificate file", cert, "", []string{"accessible by group or others"}},
		{"no key in a private certificate file", file(t, "c.pem", p.client.CertPEM, 0o600), "", []string{"holds no PEM private key", "--client-key"}},
		{"encrypted key", cert, file(t, "key.pem", []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), 0o600),
			[]string{"passphrase"}},
		{"key of another certificate", cert, file(t, "key.pem", p.leaf.KeyPEM, 0o600), []string{"client certificate", "does not match"}},
		{"key without certificate", "", file(t, "key.pem", p.client.KeyPEM, 0o600), []string{"--client-cert"}},
		{"missing key", cert, filepath.Join(t.TempDir(), "nope.pem"), []string{"client key", "no such file"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Settings{ClientCert: tt.cert, ClientKey: tt.key}.Config()
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tt.want...)
			if err != nil && strings.Contains(err.Error(), "PRIVATE KEY-----\n") {
				t.Errorf("the error quotes the key: %v", err)
			}
		})
	}
}

// wantErr checks that err says each of wants.
func wantErr(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one with %q", wants)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// wantAuth checks err as wantErr does and that it matches backends.ErrAuth.
func wantAuth(t *testing.T, err error, wants ...string) {
	t.Helper()
	wantErr(t, err, wants...)
	if err != nil && !errors.Is(err, backends.ErrAuth) {
		t.Errorf("error %q is not backends.ErrAuth", err)
	}
}
