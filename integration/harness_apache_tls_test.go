package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends/tlsclient/tlstest"
)

// tlsPKI is the test's certificates: a root CA and an intermediate it
// signed, server certificates the intermediate signed (for 127.0.0.1, an
// expired one, one for other names), and a client CA with a client
// certificate. They are made at test time and live as long as the test.
type tlsPKI struct {
	root, inter                *tlstest.Cert
	server, expired, wrongName *tlstest.Cert
	clientCA, client           *tlstest.Cert
}

// newTLSPKI makes the certificates.
func newTLSPKI(t *testing.T) *tlsPKI {
	t.Helper()
	p := &tlsPKI{root: tlstest.NewCA(t, "cloudmount test root")}
	p.inter = p.root.Issue(t, tlstest.Spec{CommonName: "cloudmount test intermediate", CA: true})
	p.server = p.inter.Issue(t, tlstest.Loopback("apache"))
	old := tlstest.Loopback("apache, expired")
	old.NotBefore, old.NotAfter = time.Now().Add(-30*24*time.Hour), time.Now().Add(-24*time.Hour).Truncate(time.Second)
	p.expired = p.inter.Issue(t, old)
	p.wrongName = p.inter.Issue(t, tlstest.Spec{CommonName: "www", DNSNames: []string{"www.example.org"}})
	p.clientCA = tlstest.NewCA(t, "cloudmount test client CA")
	p.client = p.clientCA.Issue(t, tlstest.Spec{CommonName: "alice", Client: true})
	return p
}

// tlsVhost is one https port of the TLS Apache.
type tlsVhost struct {
	name       string
	cert       *tlstest.Cert
	chain      bool // the server sends the intermediate after its certificate
	needClient bool // SSLVerifyClient require, with the client CA
}

// tlsVhosts are the ports of the TLS Apache, one per server certificate.
func (p *tlsPKI) vhosts() []tlsVhost {
	return []tlsVhost{
		{name: "good", cert: p.server, chain: true},
		{name: "leaf only", cert: p.server},
		{name: "expired", cert: p.expired, chain: true},
		{name: "wrong name", cert: p.wrongName, chain: true},
		{name: "client", cert: p.server, chain: true, needClient: true},
	}
}

// TLSServer is the harness's Apache with mod_ssl: the WebDAV share of
// Server on plain http (Server.URL) and on one https port per vhost.
type TLSServer struct {
	*Server
	// PKI is the certificates the server uses and the client may need.
	PKI *tlsPKI
	// URLs are the https URLs of the share, by vhost name.
	URLs map[string]string
}

// startApacheTLS starts the harness's Apache with mod_ssl and an https
// virtual host per server certificate, all in one process.
func startApacheTLS(t *testing.T) *TLSServer {
	t.Helper()
	p := newTLSPKI(t)
	dir := t.TempDir()
	// Apache reads certificates and keys as root, before it drops to
	// www-data: they can stay private to the test.
	clientCA := tlstest.WriteFile(t, filepath.Join(dir, "client-ca.pem"), p.clientCA.CertPEM, 0o644)
	type files struct{ cert, key string }
	vhosts := p.vhosts()
	fs := make([]files, len(vhosts))
	for i, v := range vhosts {
		pem := v.cert.CertPEM
		if v.chain {
			pem = tlstest.PEM(v.cert, p.inter)
		}
		fs[i].cert = tlstest.WriteFile(t, filepath.Join(dir, fmt.Sprintf("server%d.pem", i)), pem, 0o644)
		fs[i].key = tlstest.WriteFile(t, filepath.Join(dir, fmt.Sprintf("server%d.key", i)), v.cert.KeyPEM, 0o600)
	}
	ts := &TLSServer{PKI: p}
	ts.Server = startApacheWith(t, apacheExtra{
		Modules: [][2]string{{"ssl_module", "mod_ssl.so"}},
		Conf: func() string {
			ts.URLs = map[string]string{}
			var b strings.Builder
			for i, v := range vhosts {
				port := freePort(t)
				ts.URLs[v.name] = fmt.Sprintf("https://127.0.0.1:%d/dav/", port)
				fmt.Fprintf(&b, "Listen 127.0.0.1:%d https\n<VirtualHost 127.0.0.1:%d>\n", port, port)
				fmt.Fprintf(&b, "  SSLEngine on\n  SSLCertificateFile %q\n  SSLCertificateKeyFile %q\n", fs[i].cert, fs[i].key)
				if v.needClient {
					fmt.Fprintf(&b, "  SSLVerifyClient require\n  SSLVerifyDepth 2\n  SSLCACertificateFile %q\n", clientCA)
				}
				b.WriteString("</VirtualHost>\n")
			}
			return b.String()
		},
	})
	return ts
}
