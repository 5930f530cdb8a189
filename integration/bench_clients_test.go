//go:build bench

package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// runListing runs a listing command in dir with the C locale and returns
// its standard output.
func runListing(dir string, argv []string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String() + stderr.String(), err
	}
	return out.String(), nil
}

// curlQuote quotes a value for a curl config file.
func curlQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// curlHead is the start of every block of a curl config: quiet, failing
// on HTTP errors, with the server's credentials (never on argv).
func curlHead(srv *Server) string {
	return "silent\nshow-error\nfail\nuser = " + curlQuote(srv.User+":"+srv.Password) + "\n"
}

// curlRun runs curl with config on stdin; response bodies are discarded.
func curlRun(config string) error {
	cmd := exec.Command("curl", "-K", "-")
	cmd.Stdin = strings.NewReader(config)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("curl: %v\n%s", err, clipString(stderr.String()))
	}
	return nil
}

// curlUpload PUTs a local file to rel and returns how long curl took.
func curlUpload(srv *Server, local, rel string) (time.Duration, error) {
	return timed(func() error {
		return curlRun(curlHead(srv) + "upload-file = " + curlQuote(local) + "\nurl = " + curlQuote(srv.URLOf(rel)) + "\n")
	})
}

// curlDownload GETs rel and throws the body away.
func curlDownload(srv *Server, rel string) error {
	return curlRun(curlHead(srv) + "output = \"/dev/null\"\nurl = " + curlQuote(srv.URLOf(rel)) + "\n")
}

// curlSmallFiles makes dst and its directories with MKCOL and PUTs every
// small file, in series over one connection: "serial curl".
func curlSmallFiles(srv *Server, fx *benchFixtures, dst string, dirs int) error {
	var b strings.Builder
	b.WriteString(curlHead(srv) + "request = \"MKCOL\"\n")
	b.WriteString("url = " + curlQuote(srv.URLOf(dst+"/")) + "\n")
	for i := 0; i < dirs; i++ {
		b.WriteString("url = " + curlQuote(srv.URLOf(fmt.Sprintf("%s/d%02d/", dst, i))) + "\n")
	}
	b.WriteString("next\n" + curlHead(srv))
	for _, rel := range fx.smallRel {
		b.WriteString("upload-file = " + curlQuote(filepath.Join(fx.smallDir, rel)) + "\n")
		b.WriteString("url = " + curlQuote(srv.URLOf(dst+"/"+filepath.ToSlash(rel))) + "\n")
	}
	return curlRun(b.String())
}

// propfindBody asks for what ls -l needs.
const propfindBody = `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>` +
	`<D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/></D:prop></D:propfind>`

// curlPropfinds sends the PROPFINDs (Depth 1) that listing the tree
// recursively needs: one per directory, in series over one connection.
func curlPropfinds(srv *Server, fx *benchFixtures) error {
	var b strings.Builder
	b.WriteString(curlHead(srv) + "request = \"PROPFIND\"\nheader = \"Depth: 1\"\nheader = \"Content-Type: application/xml\"\n")
	b.WriteString("data = " + curlQuote(propfindBody) + "\n")
	for _, d := range append([]string{benchListName}, fx.listDirs...) {
		b.WriteString("url = " + curlQuote(srv.URLOf(d+"/")) + "\n")
	}
	return curlRun(b.String())
}

// hostPath is host:path for scp and rsync; "" without a server.
func (s *sshServer) hostPath(p string) string {
	if s == nil {
		return ""
	}
	return s.Host + ":" + p
}

// scp copies one file with scp (the SFTP protocol in OpenSSH 9).
func scp(s *sshServer, from, to string) error {
	args := append(append([]string{"-q"}, s.clientArgs()...), from, to)
	out, err := runCmd("", serverTimeoutBench, "scp", args...)
	if err != nil {
		return fmt.Errorf("scp %s %s: %v\n%s", from, to, err, out)
	}
	return nil
}

// sftpBatch runs sftp with a batch of commands on stdin.
func sftpBatch(s *sshServer, batch string) error {
	args := append(append([]string{"-q"}, s.clientArgs()...), "-b", "-", s.Host)
	cmd := exec.Command("sftp", args...)
	cmd.Stdin = strings.NewReader(batch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("sftp: %v\n%s", err, clipString(stderr.String()))
	}
	return nil
}

// sftpQuote quotes a path for an sftp batch file.
func sftpQuote(p string) string { return curlQuote(p) }

// sftpSmallFiles makes dir and its directories and puts every small file,
// in series, in one sftp session.
func sftpSmallFiles(s *sshServer, fx *benchFixtures, dir string, dirs int) error {
	var b strings.Builder
	b.WriteString("mkdir " + sftpQuote(dir) + "\n")
	for i := 0; i < dirs; i++ {
		b.WriteString("mkdir " + sftpQuote(filepath.Join(dir, fmt.Sprintf("d%02d", i))) + "\n")
	}
	for _, rel := range fx.smallRel {
		b.WriteString("put " + sftpQuote(filepath.Join(fx.smallDir, rel)) + " " + sftpQuote(filepath.Join(dir, rel)) + "\n")
	}
	return sftpBatch(s, b.String())
}

// sftpListings lists every directory of the tree with ls -l in one session.
func sftpListings(s *sshServer, serverDir string, fx *benchFixtures) error {
	var b strings.Builder
	for _, d := range append([]string{benchListName}, fx.listDirs...) {
		b.WriteString("ls -l " + sftpQuote(filepath.Join(serverDir, d)) + "\n")
	}
	return sftpBatch(s, b.String())
}
