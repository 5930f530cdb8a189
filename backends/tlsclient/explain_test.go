package tlsclient

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends/tlsclient/tlstest"
)

// TestExplain: each way a handshake fails is named, with what the
// certificate says and the option that fixes it.
func TestExplain(t *testing.T) {
	p := newPKI(t)
	rootCA := file(t, "root.pem", p.root.CertPEM, 0o644)
	clientKey := file(t, "client.key", p.client.KeyPEM, 0o600)
	clientCert := file(t, "client.pem", p.client.CertPEM, 0o644)
	strangerKey := file(t, "stranger.key", p.strangerClient.KeyPEM, 0o600)
	strangerCert := file(t, "stranger.pem", p.strangerClient.CertPEM, 0o644)
	chain := []*tlstest.Cert{p.inter}
	good := startTLS(t, p.leaf, chain, nil)
	goodPin := PinOf(p.leaf.Cert).String()
	wrongName := startTLS(t, p.wrongName, chain, nil)
	wrongNamePin := PinOf(p.wrongName.Cert).String()
	otherPin := PinOf(p.expired.Cert).String()
	needsClient := startTLS(t, p.leaf, chain, p.clientCA)
	oldSpec := tlstest.Spec{CommonName: "old intermediate", CA: true, NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}
	oldInter := p.root.Issue(t, oldSpec)
	// Same name as the root, another key: a renewed CA, say.
	impostor := tlstest.NewCA(t, "cloudmount test root")
	impostorCA := file(t, "impostor.pem", tlstest.PEM(impostor), 0o644)

	for _, tt := range []struct {
		name string
		s    Settings
		url  string
		want []string // nil: it works
	}{
		{"trusted through --ca", Settings{CAFile: rootCA}, good.URL, nil},
		{"unknown authority", Settings{}, good.URL,
			[]string{"not trusted", `issued by "CN=cloudmount test root,O=cloudmount tests"`, "--ca FILE (-o ca=FILE)", "system store"}},
		{"self-signed", Settings{}, startTLS(t, p.selfSigned, nil, nil).URL,
			[]string{"not trusted", `self-signed ("lonely server")`, "--ca FILE"}},
		{"expired", Settings{CAFile: rootCA}, startTLS(t, p.expired, chain, nil).URL,
			[]string{`("old server") expired on ` + p.expired.Cert.NotAfter.UTC().Format(timeLayout), "clock", "--insecure-tls --pin-sha256 " + PinOf(p.expired.Cert).String()}},
		{"expired, untrusted too", Settings{}, startTLS(t, p.expired, chain, nil).URL,
			[]string{"expired on"}},
		{"not yet valid", Settings{CAFile: rootCA}, startTLS(t, p.notYet, chain, nil).URL,
			[]string{"not valid yet", "valid from " + p.notYet.Cert.NotBefore.UTC().Format(timeLayout)}},
		{"expired intermediate", Settings{CAFile: rootCA}, startTLS(t, oldInter.Issue(t, tlstest.Loopback("young leaf")), []*tlstest.Cert{oldInter}, nil).URL,
			[]string{"a certificate in the chain of", `("old intermediate") expired on`}},
		{"a CA of the same name", Settings{CAFile: impostorCA}, good.URL,
			[]string{"not trusted", "cloudmount test root", impostorCA + " does not hold it", "possibly because of"}},
		{"no name at all", Settings{}, startTLS(t, tlstest.SelfSigned(t, tlstest.Spec{CommonName: "nameless"}), nil, nil).URL,
			[]string{`names no host ("nameless")`, "127.0.0.1 as a subject alternative name", "--insecure-tls --pin-sha256"}},
		{"wrong name", Settings{CAFile: rootCA}, wrongName.URL,
			[]string{"is for www.example.org, example.org, not for 127.0.0.1", "mount a URL with one of those names", "--pin-sha256 " + wrongNamePin}},
		{"pin matches", Settings{CAFile: rootCA, Pins: []string{goodPin}}, good.URL, nil},
		{"one of two pins matches", Settings{CAFile: rootCA, Pins: []string{otherPin + ";" + goodPin}}, good.URL, nil},
		{"pin does not match", Settings{CAFile: rootCA, Pins: []string{otherPin}}, good.URL,
			[]string{"does not match --pin-sha256 (-o pin_sha256=)", "its pin is " + goodPin}},
		{"insecure with the pin of a wrong name", Settings{Insecure: true, Pins: []string{wrongNamePin}}, wrongName.URL, nil},
		{"insecure with another pin", Settings{Insecure: true, Pins: []string{otherPin}}, wrongName.URL,
			[]string{"its pin is " + wrongNamePin}},
		{"insecure", Settings{Insecure: true}, wrongName.URL, nil},
		{"client certificate", Settings{CAFile: rootCA, ClientCert: clientCert, ClientKey: clientKey}, needsClient.URL, nil},
		{"no client certificate", Settings{CAFile: rootCA}, needsClient.URL,
			[]string{"requires a TLS client certificate", "--client-cert FILE and --client-key FILE (-o client_cert=FILE,client_key=FILE)"}},
		{"client certificate of another CA", Settings{CAFile: rootCA, ClientCert: strangerCert, ClientKey: strangerKey}, needsClient.URL,
			[]string{"refused the TLS connection", strangerCert, "issued by a CA the server trusts"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := get(t, tt.s, tt.url)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantAuth(t, err, tt.want...)
			t.Logf("%v", err)
		})
	}
}

// TestExplainOthers: what is no TLS failure is left alone.
func TestExplainOthers(t *testing.T) {
	for _, err := range []error{io.EOF, errors.New("connection refused"), fmt.Errorf("get: %w", io.ErrUnexpectedEOF)} {
		if e := (Settings{}).Explain(err, "h:443"); e != nil {
			t.Errorf("Explain(%v) = %v, want nil", err, e)
		}
	}
	if e := (Settings{}).Explain(&PinMismatchError{}, "h:443"); e == nil || !strings.Contains(e.Error(), "h:443") {
		t.Errorf("Explain(PinMismatchError) = %v", e)
	}
}
