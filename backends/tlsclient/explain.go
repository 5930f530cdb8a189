package tlsclient

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// The options as a user writes them, for the hints.
const (
	hintCA         = "pass --ca FILE (-o ca=FILE) with the certificate of the CA that signed it, or install that in the system store"
	hintClientCert = "pass --client-cert FILE and --client-key FILE (-o client_cert=FILE,client_key=FILE)"
)

// timeLayout writes the dates of a certificate.
const timeLayout = "2006-01-02 15:04:05 UTC"

// clientCertAlerts are the alerts a server sends about the client's
// certificate (or its absence).
var clientCertAlerts = []string{
	"tls: certificate required", "tls: bad certificate", "tls: unknown certificate authority",
	"tls: unsupported certificate", "tls: revoked certificate", "tls: expired certificate",
	"tls: unknown certificate", "tls: access denied", "tls: handshake failure",
}

// Explain turns a failed TLS handshake with server ("host:port") into an
// error that says which check failed, with what the certificate says
// (issuer, dates, names, key), and which option fixes it. The error
// matches backends.ErrAuth. It is nil when err is no such failure.
func (s Settings) Explain(err error, server string) error {
	var (
		pin       *PinMismatchError
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		op        *net.OpError
	)
	var leaf *x509.Certificate
	if errors.As(err, &verify) && len(verify.UnverifiedCertificates) > 0 {
		leaf = verify.UnverifiedCertificates[0]
	}
	describe := func(format string, args ...any) error {
		return backends.Describe(backends.ErrAuth, format, args...)
	}
	switch {
	case errors.As(err, &pin):
		return describe("the public key of %s does not match --pin-sha256 (-o pin_sha256=): its pin is %s; "+
			"pin that one only if you know that the server's key was changed", server, pin.Got)
	case errors.As(err, &unknownCA) && unknownCA.Cert != nil:
		c := unknownCA.Cert
		var notes []string
		if s.CAFile != "" {
			notes = append(notes, s.CAFile+" does not hold it")
		}
		// Go says why a candidate issuer did not serve (another key of
		// the same name, say).
		if _, why, ok := strings.Cut(unknownCA.Error(), "(possibly because of "); ok {
			notes = append(notes, "a CA of that name did not serve, possibly because of "+strings.TrimSuffix(why, ")"))
		}
		in := ""
		if len(notes) > 0 {
			in = " (" + strings.Join(notes, "; ") + ")"
		}
		if selfSigned(c) {
			return describe("the TLS certificate of %s is not trusted: it is self-signed (%s)%s; "+
				"pass --ca FILE (-o ca=FILE) with that certificate, or install it in the system store",
				server, nameOf(c), in)
		}
		return describe("the TLS certificate of %s is not trusted: it was issued by %q, an authority this machine does not know%s; %s",
			server, c.Issuer.String(), in, hintCA)
	case errors.As(err, &unknownCA):
		return describe("the TLS certificate of %s is not trusted: it was issued by an authority this machine does not know; %s", server, hintCA)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired && invalid.Cert != nil:
		return describe("%s", expired(server, invalid.Cert, leaf))
	case errors.As(err, &hostname) && hostname.Certificate != nil:
		c := hostname.Certificate
		if names := namesOf(c); names != "" {
			return describe("the TLS certificate of %s is for %s, not for %s; mount a URL with one of those names%s",
				server, names, hostname.Host, anyway(c))
		}
		return describe("the TLS certificate of %s names no host (%s): the server needs a certificate with %s "+
			"as a subject alternative name%s", server, nameOf(c), hostname.Host, anyway(c))
	case errors.As(err, &invalid):
		return describe("the TLS certificate of %s is not valid: %v", server, invalid)
	case verify != nil:
		return describe("the TLS certificate of %s was refused: %v", server, verify.Err)
	case errors.As(err, &op) && op.Op == "remote error" && op.Err != nil &&
		slices.Contains(clientCertAlerts, op.Err.Error()):
		alert := op.Err.Error()
		if s.ClientCert != "" {
			return describe("%s refused the TLS connection (remote error: %s): check that client certificate %s "+
				"is valid and issued by a CA the server trusts", server, alert, s.ClientCert)
		}
		if alert == "tls: certificate required" {
			return describe("%s requires a TLS client certificate (remote error: %s); %s", server, alert, hintClientCert)
		}
		return describe("%s refused the TLS connection (remote error: %s); if it requires a client certificate, %s",
			server, alert, hintClientCert)
	}
	return nil
}

// expired describes a certificate (the server's, leaf, or one above it)
// outside its validity.
func expired(server string, c, leaf *x509.Certificate) string {
	what := "the TLS certificate of " + server
	if leaf != nil && !c.Equal(leaf) {
		what = fmt.Sprintf("a certificate in the chain of %s", server)
	}
	now := time.Now()
	if now.Before(c.NotBefore) {
		return fmt.Sprintf("%s (%s) is not valid yet: it is valid from %s, and this machine's clock says %s; "+
			"check the clock", what, nameOf(c), c.NotBefore.UTC().Format(timeLayout), now.UTC().Format(timeLayout))
	}
	if leaf == nil {
		leaf = c
	}
	return fmt.Sprintf("%s (%s) expired on %s: the server needs a new certificate "+
		"(or this machine's clock, which says %s, is wrong)%s",
		what, nameOf(c), c.NotAfter.UTC().Format(timeLayout), now.UTC().Format(timeLayout), anyway(leaf))
}

// anyway is the hint for a server the user trusts despite its certificate:
// accept exactly its key.
func anyway(leaf *x509.Certificate) string {
	return fmt.Sprintf("; to connect anyway, --insecure-tls --pin-sha256 %s (-o insecure_tls,pin_sha256=%s) accepts exactly this server's key",
		PinOf(leaf), PinOf(leaf))
}

// selfSigned reports whether c signed itself.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// nameOf is the subject of c for messages.
func nameOf(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return fmt.Sprintf("%q", c.Subject.CommonName)
	}
	return fmt.Sprintf("%q", c.Subject.String())
}

// namesOf lists the names a certificate is valid for ("" for none: its
// Common Name is not one, as browsers and Go no longer take it as one).
func namesOf(c *x509.Certificate) string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return strings.Join(names, ", ")
}
