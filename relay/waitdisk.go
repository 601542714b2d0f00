package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keel-relay/keel/relay/access"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/nodecerts"
	"github.com/keel-relay/keel/storage"
)

// diskPoll is how often a relay waiting for disk space checks whether its store can open.
const diskPoll = 2 * time.Second

// WaitForDisk is what a relay does when its store cannot open because the disk is too full
// for the database to open without crashing (New failed with an error wrapping
// storage.ErrNoSpace), rather than exit and be restarted in a loop by its service manager.
// It serves the relay API's and the admin listener's addresses meanwhile: /system/status
// (and the admin /status) answer 503 with status "disk_full" and why, a PUT of a shared file
// 507, anything else 503 with Retry-After; the access lists apply as usual. It returns nil
// once the store can open (call New again), or ctx.Err() when ctx ends first.
func WaitForDisk(ctx context.Context, cfg *config.Config, build Build, log *slog.Logger) error {
	plan, _ := MemoryPlan(cfg)
	so := storageOptions(cfg, plan)
	free, need, why := storage.CheckOpen(so)
	if why == nil {
		return nil
	}
	lists, err := buildLists(cfg)
	if err != nil {
		return err
	}
	w := &diskWait{cfg: cfg, build: build, lists: lists, started: time.Now(), log: log}
	w.setReason(free, need)
	var servers []*http.Server
	newServer := func(loopbackOnly bool) *http.Server {
		srv := &http.Server{Handler: w.handler(loopbackOnly), ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
			IdleTimeout: cfg.HTTP.IdleTimeout, MaxHeaderBytes: 64 << 10,
			ErrorLog: slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn)}
		servers = append(servers, srv)
		return srv
	}
	serve := func(srv *http.Server, ln net.Listener) { go func() { _ = srv.Serve(ln) }() }
	defer func() {
		for _, srv := range servers {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if srv.Shutdown(sctx) != nil {
				_ = srv.Close()
			}
			cancel()
		}
	}()
	api := newServer(false)
	front, err := newAPITLS(cfg, nodecerts.NewHolder(cfg.TLS.NodeCerts, log.With("component", "node-certs")), log)
	if err != nil {
		return err
	}
	ln, err := listenAPI(cfg, plan.APIConnections, api, front.Config())
	if err != nil {
		return err
	}
	serve(api, ln)
	if cfg.Admin.Listen != "" {
		aln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			return fmt.Errorf("admin.listen: %w", err)
		}
		serve(newServer(true), aln)
	}
	log.Error("the store cannot open: waiting for disk space; meanwhile status says why, uploads get 507, the rest 503",
		"err", why, "api", ln.Addr().String(), "admin", cfg.Admin.Listen)
	tick := time.NewTicker(diskPoll)
	defer tick.Stop()
	reminded := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		free, need, why := storage.CheckOpen(so)
		if why == nil {
			log.Info("disk space is back: opening the store", "free", free, "need", need)
			return nil
		}
		w.setReason(free, need)
		if time.Since(reminded) >= time.Minute {
			log.Error("still waiting for disk space to open the store", "err", why)
			reminded = time.Now()
		}
	}
}

// diskWait answers requests while the relay waits for disk space.
type diskWait struct {
	cfg     *config.Config
	build   Build
	lists   *httpapi.Lists
	started time.Time
	log     *slog.Logger
	// disk is the free space and what an open needs, as last measured.
	disk atomic.Pointer[httpapi.DiskStatus]
}

func (w *diskWait) setReason(free, need int64) {
	w.disk.Store(&httpapi.DiskStatus{FreeBytes: free, NeedBytes: need, Full: true})
}

// reason says why the store cannot open, as the clients see it (no paths).
func (w *diskWait) reason() string {
	d := w.disk.Load()
	return fmt.Sprintf("disk full: %d bytes free, need %d to open the database", d.FreeBytes, d.NeedBytes)
}

func (w *diskWait) handler(loopbackOnly bool) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		peer, err := access.PeerAddr(r.RemoteAddr)
		allowed := err == nil && peer.Unmap().IsLoopback()
		if !loopbackOnly && err == nil {
			list := w.lists.Shared
			if strings.Contains(r.URL.Path, "/remote-run/") || strings.HasSuffix(r.URL.Path, "/system/reload") {
				list = w.lists.PolicyServer
			}
			allowed = list.Allows(peer)
		}
		status := strings.HasSuffix(r.URL.Path, "/system/status") || (loopbackOnly && r.URL.Path == "/status")
		code := http.StatusServiceUnavailable
		switch {
		case !allowed:
			code = http.StatusForbidden
			http.Error(rw, "forbidden: "+r.RemoteAddr+" is not in the networks allowed", code)
		case status && r.Method == http.MethodGet:
			st := httpapi.Status{Status: "disk_full", Version: w.build.Version, NodeID: w.cfg.NodeID, Role: w.cfg.Role,
				UptimeSec: int64(time.Since(w.started).Seconds()), NodesFile: w.cfg.NodesFile,
				StatusReason: w.reason() + "; the relay waits for space", Disk: w.disk.Load()}
			if loopbackOnly { // the admin listener's /status: the bare document
				httpapi.WriteJSON(rw, code, st)
			} else {
				httpapi.WriteCompactJSON(rw, code, httpapi.Envelope[httpapi.Status]{Data: st, Result: "success", Action: httpapi.ActionStatus})
			}
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/shared-files/"):
			code = http.StatusInsufficientStorage
			http.Error(rw, "insufficient storage: the relay's disk is full; nothing was stored", code)
		default:
			rw.Header().Set("Retry-After", "30")
			http.Error(rw, "the relay waits for space to open its database: "+w.reason(), code)
		}
		w.log.Info("request while waiting for disk space", "method", r.Method, "path", r.URL.Path, "peer", r.RemoteAddr, "status", code)
	})
}
