package sftp

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// jumpServer is an SSH server that only forwards direct-tcpip channels
// (what ProxyJump uses), for one authorized key.
type jumpServer struct {
	addr       string
	hostKey    ssh.Signer
	authorized ssh.PublicKey
	forwarded  atomic.Int32
}

func knownLine(addr string, key ssh.PublicKey) string {
	return knownhosts.Line([]string{addr}, key) + "\n"
}

func newJumpServer(t *testing.T) *jumpServer {
	t.Helper()
	j := &jumpServer{}
	_, j.hostKey = newKey(t)
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if j.authorized != nil && string(key.Marshal()) == string(j.authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("no")
		},
		PasswordCallback: func(ssh.ConnMetadata, []byte) (*ssh.Permissions, error) {
			t.Error("the jump host was sent a password")
			return nil, errors.New("no")
		},
	}
	cfg.AddHostKey(j.hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	j.addr = ln.Addr().String()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go j.serve(nc, cfg)
		}
	}()
	return j
}

func (j *jumpServer) serve(nc net.Conn, cfg *ssh.ServerConfig) {
	defer nc.Close()
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "direct-tcpip" {
			_ = nch.Reject(ssh.Prohibited, "forwarding only")
			continue
		}
		d := nch.ExtraData()
		host, rest, ok := sshString(d)
		if !ok || len(rest) < 4 {
			_ = nch.Reject(ssh.ConnectionFailed, "bad request")
			continue
		}
		port := binary.BigEndian.Uint32(rest)
		out, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
		if err != nil {
			_ = nch.Reject(ssh.ConnectionFailed, err.Error())
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			out.Close()
			continue
		}
		j.forwarded.Add(1)
		go ssh.DiscardRequests(creqs)
		go func() {
			defer ch.Close()
			defer out.Close()
			go func() { _, _ = io.Copy(out, ch); out.(*net.TCPConn).CloseWrite() }()
			_, _ = io.Copy(ch, out)
		}()
	}
}

func sshString(b []byte) (string, []byte, bool) {
	if len(b) < 4 {
		return "", nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint32(len(b)-4) < n {
		return "", nil, false
	}
	return string(b[4 : 4+n]), b[4+n:], true
}
