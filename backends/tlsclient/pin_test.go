package tlsclient

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestParsePins(t *testing.T) {
	sum := sha256.Sum256([]byte("a public key"))
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	hx := hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(hx); i += 2 {
		colons = append(colons, strings.ToUpper(hx[i:i+2]))
	}
	other := sha256.Sum256([]byte("another key"))
	otherPin := Pin(other).String()
	tests := []struct {
		name string
		in   string
		want []Pin
		err  string
	}{
		{"curl form", "sha256//" + b64, []Pin{sum}, ""},
		{"base64 alone", b64, []Pin{sum}, ""},
		{"base64 unpadded", strings.TrimRight(b64, "="), []Pin{sum}, ""},
		{"hex", hx, []Pin{sum}, ""},
		{"hex with colons", strings.Join(colons, ":"), []Pin{sum}, ""},
		{"two, as curl", "sha256//" + b64 + ";" + otherPin, []Pin{sum, other}, ""},
		{"blanks and empty parts", " sha256//" + b64 + " ;; ", []Pin{sum}, ""},
		{"empty", " ; ", nil, "no pin"},
		{"other hash", "sha1//" + b64, nil, "only sha256//"},
		{"too short", "sha256//" + b64[:20], nil, "not a SHA-256"},
		{"hex too short", hx[:62], nil, "not a SHA-256"},
		{"not base64", "sha256//!!!", nil, "not a SHA-256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePins(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParsePins(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePins(%q): %v", tt.in, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParsePins(%q) = %v, want %v", tt.in, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("pin %d = %s, want %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestPinString(t *testing.T) {
	p := Pin(sha256.Sum256([]byte("k")))
	s := p.String()
	if !strings.HasPrefix(s, "sha256//") || len(s) != len("sha256//")+44 {
		t.Fatalf("String() = %q", s)
	}
	back, err := ParsePins(s)
	if err != nil || len(back) != 1 || back[0] != p {
		t.Errorf("ParsePins(%q) = %v, %v", s, back, err)
	}
}

// FuzzParsePins: any input either parses into pins that read back the
// same, or is an error; it never panics.
func FuzzParsePins(f *testing.F) {
	f.Add("sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
	f.Add("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU")
	f.Add("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855;sha256//x")
	f.Fuzz(func(t *testing.T, s string) {
		pins, err := ParsePins(s)
		if err != nil {
			return
		}
		for _, p := range pins {
			back, err := ParsePins(p.String())
			if err != nil || len(back) != 1 || back[0] != p {
				t.Fatalf("%s does not read back: %v %v", p, back, err)
			}
		}
	})
}
