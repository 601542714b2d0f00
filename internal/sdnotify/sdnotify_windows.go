package sdnotify

import (
	"errors"
	"time"
)

// supported: there is no systemd on Windows; every Notifier is a no-op.
const supported = false

func getpid() int { return 0 }

func monotonic() time.Duration { return 0 }

func sendDatagram(string, string) error { return errors.New("sd_notify: not on Windows") }
