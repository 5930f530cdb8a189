package webdav

import (
	"os"
	"testing"
	"time"
)

// TestSuite runs the whole backend suite against each in-process server.
func TestSuite(t *testing.T) {
	for name, url := range servers(t) {
		t.Run(name, func(t *testing.T) {
			runSuite(t, connect(t, url))
		})
	}
}

// TestLiveServer runs the suite against a real server, when
// CLOUDMOUNT_TEST_WEBDAV_URL (and _USER, _PASSWORD) name one, and logs its
// capabilities. Example:
//
//	CLOUDMOUNT_TEST_WEBDAV_URL=http://127.0.0.1:8080/dav/ go test -run Live -v ./backends/webdav/
func TestLiveServer(t *testing.T) {
	url := os.Getenv("CLOUDMOUNT_TEST_WEBDAV_URL")
	if url == "" {
		t.Skip("CLOUDMOUNT_TEST_WEBDAV_URL not set")
	}
	cfg := Config{
		URL:      url,
		User:     os.Getenv("CLOUDMOUNT_TEST_WEBDAV_USER"),
		Password: os.Getenv("CLOUDMOUNT_TEST_WEBDAV_PASSWORD"),
		CAFile:   os.Getenv("CLOUDMOUNT_TEST_WEBDAV_CA_FILE"),
		Timeout:  10 * time.Second,
		Logger:   quietLogger(),
	}
	b, err := New(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	caps, err := b.Capabilities(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %+v", b, caps)
	if q, err := b.Quota(testContext(t)); err == nil {
		t.Logf("quota: %+v", q)
	}
	runSuite(t, b)
}
