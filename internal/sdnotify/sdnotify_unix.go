//go:build !windows

package sdnotify

import (
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// supported: unix datagram sockets exist here.
const supported = true

func getpid() int { return os.Getpid() }

// monotonic is CLOCK_MONOTONIC, the clock of MONOTONIC_USEC.
func monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// sendDatagram sends msg as one datagram to socket: a path, or an abstract name after '@'.
func sendDatagram(socket, msg string) error {
	name := socket
	if name[0] == '@' {
		name = "\x00" + name[1:]
	} else if name[0] != '/' {
		return fmt.Errorf("NOTIFY_SOCKET=%q: neither an absolute path nor an abstract name", socket)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(msg))
	return err
}
