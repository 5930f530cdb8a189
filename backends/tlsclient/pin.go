package tlsclient

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// pinPrefix starts a pin in the form curl's --pinnedpubkey takes.
const pinPrefix = "sha256//"

// Pin is the SHA-256 of a certificate's SubjectPublicKeyInfo.
type Pin [sha256.Size]byte

// String writes the pin as curl does: "sha256//" and the hash in base64.
func (p Pin) String() string {
	return pinPrefix + base64.StdEncoding.EncodeToString(p[:])
}

// PinOf is the pin of cert's public key.
func PinOf(cert *x509.Certificate) Pin {
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo)
}

// ParsePins reads one or more pins separated by ';'. Each is
// "sha256//BASE64" (curl's --pinnedpubkey), the base64 alone, or the
// SHA-256 in hex (64 digits, ':' between bytes allowed). The error never
// quotes more than the pin that is wrong.
func ParsePins(s string) ([]Pin, error) {
	var pins []Pin
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := parsePin(part)
		if err != nil {
			return nil, err
		}
		pins = append(pins, p)
	}
	if len(pins) == 0 {
		return nil, fmt.Errorf("no pin given (want sha256//BASE64)")
	}
	return pins, nil
}

// parsePin reads one pin.
func parsePin(s string) (Pin, error) {
	var p Pin
	if rest, ok := strings.CutPrefix(s, pinPrefix); ok {
		return p, decodeBase64(&p, rest, s)
	}
	if strings.Contains(s, "//") {
		return p, fmt.Errorf("pin %q: only sha256// pins are supported", s)
	}
	if h := strings.ReplaceAll(s, ":", ""); len(h) == 2*sha256.Size {
		if b, err := hex.DecodeString(h); err == nil {
			copy(p[:], b)
			return p, nil
		}
	}
	return p, decodeBase64(&p, s, s)
}

// decodeBase64 sets p from the base64 text b64 (padded or not) of the pin
// written as orig.
func decodeBase64(p *Pin, b64, orig string) error {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil || len(b) != sha256.Size {
		return fmt.Errorf("pin %q is not a SHA-256 in base64 (sha256//BASE64, 44 characters after the //) or hex (64 digits)", orig)
	}
	copy(p[:], b)
	return nil
}

// PinMismatchError is a server whose public key matches none of the pins.
type PinMismatchError struct {
	// Got is the pin of the key the server presented.
	Got Pin
}

// Error says which key the server has.
func (e *PinMismatchError) Error() string {
	return "the server's public key has pin " + e.Got.String() + ", which is not pinned"
}
