package sharedfiles

import (
	"io"
	"net/http"
	"time"
)

// idleWriter extends the connection's write deadline before every write.
type idleWriter struct {
	w    io.Writer
	rc   *http.ResponseController
	idle time.Duration
}

func (iw *idleWriter) Write(p []byte) (int, error) {
	if iw.idle > 0 {
		_ = iw.rc.SetWriteDeadline(time.Now().Add(iw.idle))
	}
	return iw.w.Write(p)
}
