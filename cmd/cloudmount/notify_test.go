package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestServiceNotifier(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@cloudmount-test-notify-" + time.Now().Format("150405.000000000")} {
		addr := name
		if addr[0] == '@' {
			addr = "\x00" + addr[1:]
		}
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", name)
		n := takeServiceNotifier()
		if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
			t.Errorf("NOTIFY_SOCKET=%q left for the programs cloudmount runs", v)
		}
		if err := n.notify("READY=1"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := conn.Read(buf)
		if err != nil || string(buf[:k]) != "READY=1" {
			t.Errorf("%s: got %q, %v", name, buf[:k], err)
		}
		conn.Close()
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := takeServiceNotifier().notify("READY=1"); err != nil {
		t.Errorf("without systemd: %v", err)
	}
}
