// Package tlstest makes certificates for tests of TLS clients: a root CA,
// intermediates, server certificates (valid, expired, for another name)
// and client certificates, each with its key and in PEM.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"testing"
	"time"
)

// Cert is a certificate with its private key.
type Cert struct {
	// Cert is the parsed certificate.
	Cert *x509.Certificate
	// Key is its private key.
	Key *ecdsa.PrivateKey
	// CertPEM is the certificate in PEM.
	CertPEM []byte
	// KeyPEM is the private key in PEM (PKCS #8).
	KeyPEM []byte
}

// Spec says what to put into a certificate. Zero times mean "an hour ago"
// and "in a day".
type Spec struct {
	// CommonName is the subject's CN.
	CommonName string
	// DNSNames and IPs are the subject alternative names.
	DNSNames []string
	IPs      []net.IP
	// NotBefore and NotAfter bound its validity.
	NotBefore, NotAfter time.Time
	// CA makes a certificate authority (root or intermediate).
	CA bool
	// Client makes a client certificate instead of a server certificate.
	Client bool
}

// Loopback is the Spec of a server certificate for 127.0.0.1 and localhost.
func Loopback(cn string) Spec {
	return Spec{CommonName: cn, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
}

// NewCA makes a self-signed root CA.
func NewCA(t testing.TB, name string) *Cert {
	t.Helper()
	return issue(t, nil, Spec{CommonName: name, CA: true})
}

// SelfSigned makes a self-signed certificate of s (a server's, unless
// s.CA or s.Client say otherwise).
func SelfSigned(t testing.TB, s Spec) *Cert {
	t.Helper()
	return issue(t, nil, s)
}

// Issue makes a certificate signed by c.
func (c *Cert) Issue(t testing.TB, s Spec) *Cert {
	t.Helper()
	return issue(t, c, s)
}

// issue makes the certificate of s, signed by parent or self-signed.
func issue(t testing.TB, parent *Cert, s Spec) *Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: s.CommonName, Organization: []string{"cloudmount tests"}},
		DNSNames:     s.DNSNames,
		IPAddresses:  s.IPs,
		NotBefore:    s.NotBefore,
		NotAfter:     s.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(24 * time.Hour)
	}
	switch {
	case s.CA:
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	case s.Client:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parent.Key, parent.Cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &Cert{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	}
}

// PEM is the certificates of certs, one after the other, in PEM.
func PEM(certs ...*Cert) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.CertPEM...)
	}
	return out
}

// TLSCertificate is c with the chain after it, for a tls.Config of a server
// (or a client) that sends them.
func (c *Cert) TLSCertificate(chain ...*Cert) tls.Certificate {
	tc := tls.Certificate{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key, Leaf: c.Cert}
	for _, ch := range chain {
		tc.Certificate = append(tc.Certificate, ch.Cert.Raw)
	}
	return tc
}

// WriteFile writes data to name with the given mode (whatever the umask).
func WriteFile(t testing.TB, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(name, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil {
		t.Fatal(err)
	}
	return name
}
