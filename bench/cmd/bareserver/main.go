// Command bareserver is the baseline of the HEAD benchmark: a bare net/http server answering
// HEAD /rudder/relay-api/shared-files/{target}/{source}/{file}?hash=<hex> for one file held in
// memory, with the headers keel-relay sends for a stored file. It has none of the relay's
// work (access control, request log, metrics, store lookup), so the relay's HEAD rate is read
// as a fraction of this one, measured on the same machine in the same run.
//
// It listens on -listen (127.0.0.1:0 by default) and prints "listening on <addr>" once ready.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// file is the one file the server knows.
type file struct {
	target, source, id string
	hash               string
	size               int64
	stored, expires    time.Time
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	path := flag.String("file", "n0001/n0000/head", "target/source/id of the file")
	hash := flag.String("hash", "", "hex sha256 of the file (required)")
	size := flag.Int64("size", 0, "size of the file in bytes")
	flag.Parse()
	parts := strings.Split(*path, "/")
	if len(parts) != 3 || *hash == "" {
		fmt.Fprintln(os.Stderr, "bareserver: -file target/source/id and -hash are required")
		os.Exit(2)
	}
	now := time.Now()
	f := file{target: parts[0], source: parts[1], id: parts[2], hash: *hash, size: *size, stored: now, expires: now.Add(time.Hour)}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, *listen, f); err != nil {
		fmt.Fprintln(os.Stderr, "bareserver:", err)
		os.Exit(1)
	}
}

// serve answers until ctx is done.
func serve(ctx context.Context, addr string, f file) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("HEAD /rudder/relay-api/shared-files/{target}/{source}/{file}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("target") != f.target || r.PathValue("source") != f.source || r.PathValue("file") != f.id ||
			!strings.EqualFold(r.URL.Query().Get("hash"), f.hash) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusNotFound)
			return
		}
		// The headers keel-relay's sharedfiles handler sends for a stored file.
		h := w.Header()
		h.Set("Content-Length", strconv.FormatInt(f.size, 10))
		h.Set("ETag", `"`+f.hash+`"`)
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Last-Modified", f.stored.UTC().Format(http.TimeFormat))
		h.Set("Expires", f.expires.UTC().Format(http.TimeFormat))
		h.Set("Keel-Hash-Algorithm", "sha256")
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Printf("listening on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
