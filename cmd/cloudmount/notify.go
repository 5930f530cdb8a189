package main

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// serviceNotifier tells systemd how a Type=notify service is doing, over
// the datagram socket that $NOTIFY_SOCKET names ("@name" for an abstract
// one). Without the variable it does nothing.
type serviceNotifier struct {
	socket string
}

// takeServiceNotifier reads $NOTIFY_SOCKET and removes it from the
// environment, so that the programs cloudmount runs do not speak for it.
func takeServiceNotifier() serviceNotifier {
	n := serviceNotifier{socket: os.Getenv("NOTIFY_SOCKET")}
	_ = os.Unsetenv("NOTIFY_SOCKET")
	return n
}

// notify sends one state ("READY=1", "STOPPING=1").
func (n serviceNotifier) notify(state string) error {
	if n.socket == "" {
		return nil
	}
	addr := n.socket
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}
