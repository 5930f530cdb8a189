// Package tlsclient builds the TLS configuration of an https backend from
// what the user gives (trusted CA certificates, pins of the server's key,
// a client certificate, the choice to skip the checks) and explains a
// failed handshake in words that name the check and the option that fixes
// it.
package tlsclient

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Settings are the TLS options of an https backend. The zero value trusts
// the system's roots and nothing else.
type Settings struct {
	// CAFile holds PEM certificates trusted besides the system's roots:
	// a private root CA, intermediates, in any order.
	CAFile string `json:"ca_file,omitempty"`
	// Pins are the pins of the server keys accepted (see ParsePins); with
	// any, the server's key must match one of them, on top of the other
	// checks.
	Pins []string `json:"pins,omitempty"`
	// ClientCert is a PEM file with the client certificate (and the
	// intermediates to send with it).
	ClientCert string `json:"client_cert,omitempty"`
	// ClientKey is a PEM file with the private key of ClientCert, which
	// only its owner may read; "" means the key is in ClientCert.
	ClientKey string `json:"client_key,omitempty"`
	// Insecure skips the checks of the server's certificate (authority,
	// dates, host name); Pins are still checked.
	Insecure bool `json:"insecure,omitempty"`
}

// maxPEMSize bounds what is read of a certificate or key file.
const maxPEMSize = 1 << 20

// Config is the tls.Config of s. It reads the files s names; its errors
// name the file and what is wrong with it, never the content of a key.
func (s Settings) Config() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.Insecure}
	if s.CAFile != "" {
		pool, err := loadCAs(s.CAFile)
		if err != nil {
			return nil, err
		}
		conf.RootCAs = pool
	}
	var pins []Pin
	for _, p := range s.Pins {
		ps, err := ParsePins(p)
		if err != nil {
			return nil, err
		}
		pins = append(pins, ps...)
	}
	if len(pins) > 0 {
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			return checkPins(cs.PeerCertificates, pins)
		}
	}
	if s.ClientKey != "" && s.ClientCert == "" {
		return nil, errors.New("a client key needs its certificate: pass --client-cert FILE too")
	}
	if s.ClientCert != "" {
		cert, err := loadClientCert(s.ClientCert, s.ClientKey)
		if err != nil {
			return nil, err
		}
		// Sent whenever the server asks, whatever CAs it names: a server
		// that names none, or others, says more by refusing it.
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		}
	}
	return conf, nil
}

// checkPins accepts the connection if the server's certificate has one of
// the pins.
func checkPins(certs []*x509.Certificate, pins []Pin) error {
	if len(certs) == 0 {
		return errors.New("the server sent no certificate")
	}
	got := PinOf(certs[0])
	for _, p := range pins {
		if p == got {
			return nil
		}
	}
	return &PinMismatchError{Got: got}
}

// loadCAs is the system's roots plus every certificate in file. A chain
// file may hold root and intermediates in any order: each one is trusted,
// so whichever the server leaves out of its chain is found here.
func loadCAs(file string) (*x509.CertPool, error) {
	data, err := readLimited(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	certs, err := parseCerts(data, "CA file "+file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// parseCerts reads every CERTIFICATE block of PEM data; other blocks are
// skipped. what names the file in errors.
func parseCerts(data []byte, what string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", what, n, err)
		}
		certs = append(certs, c)
		n++
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", what)
	}
	return certs, nil
}

// loadClientCert reads the client certificate and its key, from keyFile
// or, if that is "", from certFile. The file with the key must be private.
func loadClientCert(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := readLimited(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client certificate: %w", err)
	}
	if _, err := parseCerts(certPEM, "client certificate "+certFile); err != nil {
		return tls.Certificate{}, err
	}
	if keyFile == "" {
		keyFile = certFile
	}
	keyPEM, err := readPrivate(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client key: %w", err)
	}
	if err := checkKeyPEM(keyPEM, keyFile); err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// Its errors describe the blocks, never their content.
		return tls.Certificate{}, fmt.Errorf("client certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// checkKeyPEM says what is wrong with a key file that holds no usable key.
func checkKeyPEM(data []byte, file string) error {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return fmt.Errorf("client key %s holds no PEM private key (-----BEGIN PRIVATE KEY-----): pass it with --client-key FILE", file)
		}
		switch {
		case block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] == "4,ENCRYPTED":
			return fmt.Errorf("client key %s is encrypted with a passphrase; cloudmount needs it without one "+
				"(openssl pkey -in %s -out NEWFILE, then chmod 600 NEWFILE)", file, file)
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			return nil
		}
	}
}

// readLimited reads a PEM file of reasonable size.
func readLimited(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f, file)
}

// readPrivate reads a file that holds a private key, refusing it unless
// it is a regular file that neither group nor others can access (mode
// 0600 or stricter). The mode is checked on the open file.
func readPrivate(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", file, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", file)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s holds a private key but is accessible by group or others (mode %04o): chmod 600 %s",
			file, perm, file)
	}
	return readAll(f, file)
}

// readAll reads f up to maxPEMSize.
func readAll(f *os.File, file string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxPEMSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(data) > maxPEMSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a PEM file", file, maxPEMSize)
	}
	return data, nil
}
