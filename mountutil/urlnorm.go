package mountutil

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
)

// schemeAliases are URL schemes that mean another one for matching secrets.
var schemeAliases = map[string]string{"davs": "https", "dav": "http"}

// defaultPorts are the ports a normalised URL leaves out.
var defaultPorts = map[string]string{"https": "443", "http": "80"}

// NormalizeURL returns the form of a source URL used to match it against
// the secrets file: scheme and host in lower case (davs → https, dav →
// http), no default port, no user, no query, the path cleaned and without a
// trailing slash ("/" for the root). The error never repeats the input,
// which may hold a password.
func NormalizeURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("not a valid URL: %w", err)
	}
	if u.Scheme == "" || u.Host == "" {
		return "", errors.New("not a valid URL: want scheme://host/path")
	}
	scheme := strings.ToLower(u.Scheme)
	if alias, ok := schemeAliases[scheme]; ok {
		scheme = alias
	}
	host := strings.ToLower(u.Hostname())
	if port := u.Port(); port != "" && port != defaultPorts[scheme] {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	p := path.Clean("/" + u.Path)
	n := url.URL{Scheme: scheme, Host: host, Path: p}
	return n.String(), nil
}
