// Package relay assembles the keel-relay daemon: the relay HTTP API (shared files, system
// endpoints), the admin listener (/metrics), the node map and its reloads, the forward queue
// worker and the TTL cleaner, over one storage.Store. Server.Run serves until its context
// ends, then drains.
package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	edgeserver "github.com/keel-relay/keel/edge/server"
	"github.com/keel-relay/keel/internal/connlimit"
	"github.com/keel-relay/keel/internal/logging"
	"github.com/keel-relay/keel/internal/membudget"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/relay/access"
	"github.com/keel-relay/keel/relay/admintoken"
	"github.com/keel-relay/keel/relay/cleaner"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/forward"
	"github.com/keel-relay/keel/relay/nodemap"
	"github.com/keel-relay/keel/relay/remoterun"
	"github.com/keel-relay/keel/relay/sharedfiles"
	"github.com/keel-relay/keel/storage"
)

// Build identifies the running binary.
type Build struct {
	Version string
	Commit  string
	Date    string
}

// Options are what the daemon needs besides its config.
type Options struct {
	// ConfigPath and ConfigExplicit say where Reload re-reads the config from
	// (ConfigPath "" = embedded default only).
	ConfigPath     string
	ConfigExplicit bool
	Build          Build
	Logger         *slog.Logger
	// LogLevel, when set, is adjusted on reload to follow log.level.
	LogLevel *slog.LevelVar
	// Edge runs remote runs over live edge streams; nil means the relay's own edge API
	// (when edge.enabled).
	Edge remoterun.EdgeRunner
	// Pressure tells when the relay is near its memory budget (uploads wait, edge streams and
	// remote-run calls are refused); nil means the runtime's own gauge (tests set their own).
	Pressure membudget.Pressure
}

// Server is a running keel-relay.
type Server struct {
	opts    Options
	log     *slog.Logger
	cfg     atomic.Pointer[config.Config]
	lists   atomic.Pointer[accessLists]
	store   *storage.Store
	nodes   *nodemap.Holder
	reg     *metrics.Registry
	m       *serverMetrics
	hops    *forward.Hops
	worker  *forward.Worker
	cleaner *cleaner.Cleaner
	files   *sharedfiles.Handler
	remote  *remoterun.Handler
	edge    *edgeserver.Server // nil when edge.enabled is false

	plan     membudget.Plan     // the memory budget and its split
	gauge    *membudget.Gauge   // memory in use
	pressure membudget.Pressure // gauge, or Options.Pressure

	apiLn, adminLn net.Listener
	api, admin     *http.Server
	adminToken     admintoken.Token // zero when admin.token_file is empty

	started   time.Time
	draining  atomic.Bool
	diskUsage atomic.Int64
	inflight  sync.WaitGroup

	reloadMu    sync.Mutex
	nodeLoadErr atomic.Pointer[string]
	nodeLoaded  atomic.Pointer[time.Time]
	// keepMu serialises what the store keeps of the node map (keepNodeMap and
	// supersedeKeptNodeMap), so that it follows the order in which maps came into force.
	keepMu      sync.Mutex
	nodeKept    atomic.Pointer[string] // digest of the node map known to be kept in the store
	nodeKeepErr atomic.Pointer[string] // why the map in force is not kept; nil when it is
}

// accessLists are the reloadable access-control lists.
type accessLists struct {
	shared       *access.List // shared files, status, info
	policyServer *access.List // remote run, reload (plus loopback)
	metrics      *access.List // GET /metrics on the admin listener
}

func buildLists(cfg *config.Config) (*accessLists, error) {
	shared, err := access.Parse(cfg.HTTP.AllowedNetworks)
	if err != nil {
		return nil, fmt.Errorf("http.allowed_networks: %w", err)
	}
	ps, err := access.Parse(append([]string{"127.0.0.0/8", "::1/128"}, cfg.HTTP.PolicyServerNetworks...))
	if err != nil {
		return nil, fmt.Errorf("http.policy_server_networks: %w", err)
	}
	scrapers, err := access.Parse(append([]string{"127.0.0.0/8", "::1/128"}, cfg.Admin.MetricsNetworks...))
	if err != nil {
		return nil, fmt.Errorf("admin.metrics_networks: %w", err)
	}
	return &accessLists{shared: shared, policyServer: ps, metrics: scrapers}, nil
}

// New opens the store, loads the node map and binds the listeners; Run serves.
func New(cfg *config.Config, opts Options) (s *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	log := opts.Logger
	s = &Server{opts: opts, log: log, reg: metrics.NewRegistry(), started: time.Now()}
	s.cfg.Store(cfg)
	lists, err := buildLists(cfg)
	if err != nil {
		return nil, err
	}
	s.lists.Store(lists)

	plan, warnings := MemoryPlan(cfg)
	for _, w := range warnings {
		log.Warn(w)
	}
	logPlan(log, plan, applyGoLimit(plan))
	s.plan, s.gauge, s.pressure = plan, membudget.NewGauge(plan.NearAt), opts.Pressure
	if s.pressure == nil {
		s.pressure = s.gauge
	}

	so := storageOptions(cfg, plan)
	if !so.SyncWrites {
		log.Warn("storage.sync_writes is off: an acknowledged file can be lost in a power failure")
	}
	s.store, err = storage.Open(so, log.With("component", "storage"))
	if err != nil {
		return nil, err
	}
	// The returns below give a nil *Server with the error: clean up through srv.
	srv := s
	defer func() {
		if err != nil {
			_ = srv.closeListeners()
			if srv.edge != nil {
				srv.edge.Close()
			}
			_ = srv.store.Close()
		}
	}()

	s.nodes = nodemap.NewHolder(cfg.NodeID, log.With("component", "nodemap"))
	s.nodes.BeforeInstall(s.supersedeKeptNodeMap)
	s.m = newServerMetrics(s.reg, s)
	if err := s.loadNodeMap(); err != nil {
		log.Error("node map not loaded", "err", err)
	}

	s.hops, err = forward.NewHops(forward.HopOptions{
		Upstream: cfg.Upstream, SubRelayURL: cfg.Forward.SubRelayURL, AllowHTTP: cfg.Forward.AllowHTTP,
		CAFile: cfg.Forward.TLS.CAFile, UpstreamKeyHash: cfg.Forward.TLS.KeyHash,
		InsecureSkipVerify: cfg.Forward.TLS.InsecureSkipVerify,
	}, s.nodes.Current, log.With("component", "forward"))
	if err != nil {
		return nil, err
	}
	s.worker = forward.NewWorker(s.store, s.hops, forward.WorkerOptions{
		MinBackoff: cfg.Forward.MinBackoff, MaxBackoff: cfg.Forward.MaxBackoff,
		Concurrency: cfg.Forward.Concurrency, AttemptTimeout: cfg.Forward.AttemptTimeout,
	}, forward.NewMetrics(s.reg), log.With("component", "forward"))
	s.cleaner = cleaner.New(s.store, cfg.SharedFiles.CleanupInterval, cleaner.NewMetrics(s.reg), log.With("component", "cleaner"))
	s.files = sharedfiles.New(sharedfiles.Options{
		Root:                 cfg.Role == config.RoleRoot,
		MaxBody:              func() int64 { return int64(s.cfg.Load().HTTP.MaxBody) },
		BodyIdleTimeout:      cfg.HTTP.BodyIdleTimeout,
		MaxConcurrentUploads: plan.UploadSlots,
		MaxUploadsPerClient:  cfg.HTTP.MaxUploadsPerClient,
		MinUploadRate:        int64(cfg.HTTP.MinUploadRate),
		UploadSlotWait:       cfg.HTTP.UploadSlotWait,
		UploadPreemptRate:    int64(cfg.HTTP.UploadPreemptRate),
		Metrics:              s.reg,
		Pressure:             s.pressure,
	}, s.store, s.nodes.Current, s.hops, s.worker.Wake, log.With("component", "shared-files"))

	// Remote runs go down only: sub-relays are reached with remote_run.sub_relay_url and
	// verified like forwards (their key pin from the node map).
	runHops, err := forward.NewHops(forward.HopOptions{
		SubRelayURL: cfg.RemoteRun.SubRelayURL, AllowHTTP: cfg.Forward.AllowHTTP,
		InsecureSkipVerify: cfg.Forward.TLS.InsecureSkipVerify,
	}, s.nodes.Current, log.With("component", "remote-run"))
	if err != nil {
		return nil, err
	}
	edgeRunner := opts.Edge
	if cfg.Edge.Enabled {
		eo, err := edgeserver.FromConfig(cfg)
		if err != nil {
			return nil, err
		}
		eo.MaxStreams, eo.MaxConnections, eo.Pressure = plan.EdgeStreams, plan.EdgeConnections, s.pressure
		if s.edge, err = edgeserver.New(eo, s.store, s.reg, log.With("component", "edge")); err != nil {
			return nil, err
		}
		if edgeRunner == nil {
			edgeRunner = s.edge.Runner()
		}
	}
	s.remote = remoterun.New(remoterun.Options{
		Command: cfg.RemoteRun.Command, Concurrency: cfg.RemoteRun.Concurrency,
		Timeout: cfg.RemoteRun.Timeout, MaxCalls: plan.RemoteRunCalls,
		OutputLines: plan.RemoteRunOutputLines, Pressure: s.pressure,
	}, s.nodes.Current, runHops, edgeRunner, remoterun.NewMetrics(s.reg), log.With("component", "remote-run"))

	if cfg.Admin.Listen != "" && cfg.Admin.TokenFile != "" {
		if s.adminToken, err = admintoken.LoadOrCreate(cfg.Admin.TokenFile); err != nil {
			return nil, fmt.Errorf("admin.token_file: %w", err)
		}
	}
	if err := s.listen(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// StorageOptions maps the storage section (and the queue bound) to store options, with the
// memtables and caches lowered to fit the memory budget (MemoryPlan).
func StorageOptions(cfg *config.Config) storage.Options {
	plan, _ := MemoryPlan(cfg)
	return storageOptions(cfg, plan)
}

func storageOptions(cfg *config.Config, plan membudget.Plan) storage.Options {
	so := storage.DefaultOptions(cfg.DataDir)
	so.MemTableSize = plan.MemTableSize
	so.NumMemtables = plan.NumMemtables
	so.BlockCacheSize = plan.BlockCacheSize
	so.IndexCacheSize = plan.IndexCacheSize
	so.ValueLogFileSize = int64(cfg.Storage.ValueLogFileSize)
	so.ValueThreshold = int64(cfg.Storage.ValueThreshold)
	so.NumCompactors = cfg.Storage.NumCompactors
	so.ChunkSize = int(cfg.Storage.ChunkSize)
	so.SyncWrites = cfg.Storage.SyncWrites
	so.MaxJobs = cfg.Forward.MaxJobs
	so.MinFreeSpace = minFreeSpace(cfg)
	return so
}

// minFreeSpace maps storage.min_free_space to storage.Options.MinFreeSpace (0: automatic).
func minFreeSpace(cfg *config.Config) int64 {
	if cfg.Storage.MinFreeSpace == config.Auto {
		return 0
	}
	return int64(cfg.Storage.MinFreeSpace)
}

// listenAPI opens the relay API's listener (http.listen, with TLS when configured), with at
// most maxConns connections open at once (the memory plan's http.max_connections). While it
// is full, the idle keep-alive connections of srv are closed so that they do not starve new
// ones; listenAPI installs srv's ConnState hook for that.
func listenAPI(cfg *config.Config, maxConns int, srv *http.Server) (net.Listener, error) {
	raw, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	capped := connlimit.New(raw, maxConns)
	idle := &connlimit.IdleHTTP{}
	srv.ConnState = idle.ConnState
	capped.SetReclaim(func() { idle.CloseIdle() })
	var ln net.Listener = capped
	if cfg.HTTP.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("http.tls_cert/tls_key: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	return ln, nil
}

func (s *Server) listen(cfg *config.Config) error {
	var err error
	s.api = &http.Server{
		Handler:           s.apiHandler(),
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.With("component", "http").Handler(), slog.LevelWarn),
	}
	if s.apiLn, err = listenAPI(cfg, s.plan.APIConnections, s.api); err != nil {
		return err
	}
	if cfg.Admin.Listen != "" {
		s.adminLn, err = net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			return fmt.Errorf("admin.listen: %w", err)
		}
		s.admin = &http.Server{
			Handler:           s.adminHandler(),
			ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
			IdleTimeout:       cfg.HTTP.IdleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(s.log.With("component", "admin").Handler(), slog.LevelWarn),
		}
	}
	return nil
}

func (s *Server) closeListeners() error {
	var errs []error
	for _, ln := range []net.Listener{s.apiLn, s.adminLn} {
		if ln != nil {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// APIAddr returns the address the relay API listens on.
func (s *Server) APIAddr() net.Addr { return s.apiLn.Addr() }

// AdminAddr returns the admin listener's address, or nil when it is disabled.
func (s *Server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Edge returns the edge API, or nil when edge.enabled is false.
func (s *Server) Edge() *edgeserver.Server { return s.edge }

// EdgeAddr returns the edge API's address, or nil when it is disabled.
func (s *Server) EdgeAddr() net.Addr {
	if s.edge == nil {
		return nil
	}
	return s.edge.Addr()
}

// Run serves until ctx is done, then drains: new connections are refused, requests in flight
// get shutdown_grace to finish, the workers stop, and the store is closed. It returns nil after
// a clean drain.
func (s *Server) Run(ctx context.Context) error {
	cfg := s.cfg.Load()
	workCtx, stopWork := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	workers.Go(func() { s.worker.Run(workCtx) })
	workers.Go(func() { s.cleaner.Run(workCtx) })
	workers.Go(func() { s.watchDisk(workCtx) })
	if cfg.NodesFile != "" && cfg.NodesPollInterval > 0 {
		workers.Go(func() { s.nodes.Watch(workCtx, cfg.NodesFile, cfg.NodesPollInterval, s.nodeMapLoaded) })
	}

	serveErr := make(chan error, 3)
	go func() { serveErr <- serve(s.api, s.apiLn) }()
	if s.admin != nil {
		go func() { serveErr <- serve(s.admin, s.adminLn) }()
	}
	edgeAddr := "disabled"
	if s.edge != nil {
		edgeAddr = s.edge.Addr().String()
		go func() {
			if err := s.edge.Serve(); err != nil {
				serveErr <- fmt.Errorf("edge: %w", err)
			}
		}()
	}
	s.log.Info("keel-relay started", "version", s.opts.Build.Version, "node_id", cfg.NodeID, "role", cfg.Role,
		"api", s.apiLn.Addr().String(), "admin", addrString(s.adminLn), "edge", edgeAddr, "data_dir", cfg.DataDir,
		"nodes", s.nodes.Current().Len(), "files", s.store.FileCount(), "queued", s.store.JobCount())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
		s.log.Error("listener failed; shutting down", "err", runErr)
	}
	s.drain(cfg.ShutdownGrace)
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	s.remote.Shutdown(rctx) // asynchronous remote runs: their processes are killed
	rcancel()
	stopWork()
	workers.Wait()
	if err := s.store.Close(); err != nil {
		s.log.Error("close store", "err", err)
		if runErr == nil {
			runErr = err
		}
	}
	s.log.Info("keel-relay stopped")
	return runErr
}

func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func addrString(ln net.Listener) string {
	if ln == nil {
		return "disabled"
	}
	return ln.Addr().String()
}

// drain stops accepting, lets requests in flight finish within grace, then cuts the rest and
// waits for their handlers to return (so nothing writes to the store after it closes).
func (s *Server) drain(grace time.Duration) {
	s.draining.Store(true)
	s.log.Info("draining", "grace", grace)
	s.files.Drain() // uploads without a slot yet: 503 now, not at the end of the grace
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	edgeDone := make(chan struct{})
	go func() {
		defer close(edgeDone)
		if s.edge != nil {
			s.edge.Shutdown(ctx) // health NOT_SERVING, Drain, grace, stop, last-seen flush
		}
	}()
	defer func() { <-edgeDone }()
	if err := s.api.Shutdown(ctx); err != nil {
		s.log.Warn("grace period over; cutting the requests still running", "err", err)
		_ = s.api.Close()
	}
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.log.Error("handlers still running 10s after the connections were cut")
	}
	if s.admin != nil {
		actx, acancel := context.WithTimeout(context.Background(), time.Second)
		defer acancel()
		if err := s.admin.Shutdown(actx); err != nil {
			_ = s.admin.Close()
		}
	}
}

// watchDisk refreshes the store's disk usage for metrics and status (walking the data
// directory on every scrape would be wasteful).
func (s *Server) watchDisk(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		if n, err := s.store.DiskUsage(); err == nil {
			s.diskUsage.Store(n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Reload re-reads the config file and the node map. Settings that can change live (log
// level, access lists, body limit, storage.min_free_space) are applied; a changed setting that needs a restart is
// reported. A bad config or node map leaves the running ones in place.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	var errs []error
	old := s.cfg.Load()
	next := old
	if s.opts.ConfigPath != "" {
		cfg, err := config.Load(s.opts.ConfigPath, s.opts.ConfigExplicit)
		if err != nil {
			errs = append(errs, fmt.Errorf("config not reloaded: %w", err))
		} else if lists, err := buildLists(cfg); err != nil {
			errs = append(errs, fmt.Errorf("config not reloaded: %w", err))
		} else {
			next = s.applyConfig(old, cfg, lists)
		}
	}
	if err := s.loadNodeMapFrom(next); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	if err != nil {
		s.log.Error("reload incomplete", "err", err)
	} else {
		s.log.Info("reloaded", "nodes", s.nodes.Current().Len())
	}
	return err
}

// applyConfig installs the live-reloadable part of cfg and returns the config now in force.
func (s *Server) applyConfig(old, cfg *config.Config, lists *accessLists) *config.Config {
	live := *old
	live.Log = cfg.Log
	live.HTTP.AllowedNetworks = cfg.HTTP.AllowedNetworks
	live.HTTP.PolicyServerNetworks = cfg.HTTP.PolicyServerNetworks
	live.HTTP.MaxBody = cfg.HTTP.MaxBody
	live.Admin.MetricsNetworks = cfg.Admin.MetricsNetworks
	live.NodesFile = cfg.NodesFile
	live.Storage.MinFreeSpace = cfg.Storage.MinFreeSpace
	if !reflect.DeepEqual(live, *cfg) {
		for _, key := range changedKeys(live, *cfg) {
			s.log.Warn("config change needs a restart to take effect", "key", key)
		}
	}
	if s.opts.LogLevel != nil {
		s.opts.LogLevel.Set(logging.ParseLevel(cfg.Log.Level))
	}
	s.lists.Store(lists)
	s.cfg.Store(&live)
	if old.Storage.MinFreeSpace != live.Storage.MinFreeSpace {
		sp := s.store.SetMinFreeSpace(minFreeSpace(&live))
		s.log.Info("storage.min_free_space changed", "min_free_space", live.Storage.MinFreeSpace.String(), "reserve", sp.Reserve)
	}
	return &live
}

// changedKeys lists the top-level sections (or keys) that differ between a and b.
func changedKeys(a, b config.Config) []string {
	var keys []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	for i := range t.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			name := t.Field(i).Tag.Get("mapstructure")
			if name == "" {
				name = t.Field(i).Name
			}
			keys = append(keys, name)
		}
	}
	return keys
}

// loadNodeMap loads the node map at start; when the file is missing or broken, the last good
// map kept in the store is used, unless it is marked superseded (a newer map was in force and
// could not be kept): then no node is routed, and the status says why.
func (s *Server) loadNodeMap() error {
	cfg := s.cfg.Load()
	err := s.loadNodeMapFrom(cfg)
	if err == nil || cfg.NodesFile == "" {
		return err
	}
	rec, content, rerr := s.store.OpenNodeMap()
	if errors.Is(rerr, storage.ErrNotFound) {
		return err
	}
	if rerr != nil {
		return errors.Join(err, fmt.Errorf("stored node map unusable: %w", rerr))
	}
	defer content.Close()
	if rec.SupersededBy != "" {
		stale := fmt.Errorf("the node map kept in the store (sha256 %s, loaded at %s from %s) is older than the map last in force "+
			"(sha256 %s, since %s), which could not be kept: it is not used, and no node is routed until a good nodes file is loaded",
			rec.Digest, rec.LoadedAt.UTC().Format(time.RFC3339), rec.Source, rec.SupersededBy, rec.SupersededAt.UTC().Format(time.RFC3339))
		s.log.Error("node map kept in the store not used", "err", stale)
		msg := err.Error() + "; " + stale.Error()
		s.nodeLoadErr.Store(&msg)
		return errors.Join(err, stale)
	}
	m, perr := nodemap.ParseReader(content, cfg.NodeID)
	if perr == nil && m.Digest() != rec.Digest {
		perr = fmt.Errorf("content has sha256 %s, its record says %s", m.Digest(), rec.Digest)
	}
	if perr != nil {
		return errors.Join(err, fmt.Errorf("stored node map unusable: %w", perr))
	}
	s.nodes.Set(m)
	s.nodeKept.Store(&rec.Digest)
	loaded := rec.LoadedAt
	s.nodeLoaded.Store(&loaded)
	s.log.Warn("using the last good node map kept in the store", "nodes", m.Len(), "loaded_at", rec.LoadedAt, "source", rec.Source)
	debug.FreeOSMemory()
	return err
}

func (s *Server) loadNodeMapFrom(cfg *config.Config) error {
	if cfg.NodesFile == "" {
		if s.nodeLoaded.Load() == nil {
			now := time.Now()
			s.nodeLoaded.Store(&now)
		}
		return nil
	}
	m, err := s.nodes.LoadFile(cfg.NodesFile)
	s.nodeMapLoaded(m, err)
	if err != nil {
		return fmt.Errorf("node map %s not loaded (the previous map stays): %w", cfg.NodesFile, err)
	}
	return nil
}

// nodeMapLoaded records the outcome of a node map load (from start, reload or the watcher).
func (s *Server) nodeMapLoaded(m *nodemap.Map, err error) {
	// The previous map (and the garbage of a load, kept or refused) goes back to the system now
	// rather than over the next minutes: a node map changes rarely and can be large.
	defer debug.FreeOSMemory()
	if err != nil {
		msg := err.Error()
		s.nodeLoadErr.Store(&msg)
		s.m.nodeLoads.With("error").Inc()
		s.log.Error("node map refused; the previous map stays", "err", err)
		return
	}
	s.nodeLoadErr.Store(nil)
	now := time.Now()
	s.nodeLoaded.Store(&now)
	s.m.nodeLoads.With("ok").Inc()
	s.log.Info("node map loaded", "nodes", m.Len(), "digest", m.Digest())
	s.keepNodeMap(m, now)
}

// keepNodeMap keeps the file of the map just loaded in the store, so a restart with a broken or
// missing file still routes with it. The file is read again (the map does not hold it) and
// must still be the one parsed; if it changed since, the watcher loads (and keeps) the newer
// one. A map already kept is not written again. When keeping fails, the map kept before stays
// marked superseded (supersedeKeptNodeMap) and the status says the map in force is not kept.
func (s *Server) keepNodeMap(m *nodemap.Map, loadedAt time.Time) {
	s.keepMu.Lock()
	defer s.keepMu.Unlock()
	if s.nodes.Current() != m {
		return // a newer map came into force meanwhile: its own keep follows
	}
	rec, err := s.store.NodeMapInfo()
	if err == nil && rec.Digest == m.Digest() && rec.SupersededBy == "" {
		s.keptNodeMap(m.Digest())
		return
	}
	path := s.cfg.Load().NodesFile
	written, err := s.saveNodeMapFile(path, m, loadedAt)
	if err != nil {
		var consequence string
		switch info, ierr := s.store.NodeMapInfo(); {
		case errors.Is(ierr, storage.ErrNotFound):
			consequence = "no map is kept: a restart without a good nodes file routes no node"
		case ierr == nil && info.SupersededBy == m.Digest():
			consequence = "the older map kept there is marked superseded: a restart without a good nodes file routes no node rather than route with it"
		default:
			consequence = "the older map kept there could not be marked superseded: a restart without a good nodes file would route with it"
		}
		msg := fmt.Sprintf("the node map in force is not kept in the store (%v); %s", err, consequence)
		s.nodeKeepErr.Store(&msg)
		s.log.Error("node map not kept in the store", "err", err, "consequence", consequence)
		return
	}
	s.keptNodeMap(m.Digest())
	s.log.Info("node map kept in the store", "nodes", m.Len(), "bytes_written", written, "digest", m.Digest())
}

// keptNodeMap records that the map with digest is the one kept in the store.
func (s *Server) keptNodeMap(digest string) {
	s.nodeKept.Store(&digest)
	s.nodeKeepErr.Store(nil)
}

// saveNodeMapFile streams the file at path, which must be m's, into the store.
func (s *Server) saveNodeMapFile(path string, m *nodemap.Map, loadedAt time.Time) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read the node map again: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("read the node map again: %w", err)
	}
	return s.store.SaveNodeMap(f, storage.NodeMapRecord{Source: path, LoadedAt: loadedAt, Digest: m.Digest(), Size: fi.Size()})
}

// supersedeKeptNodeMap runs before a map that parsed comes into force. If the store keeps
// another map, it is marked superseded first, so that a restart (even one right after this) with
// a broken or missing nodes file never routes with a map older than the one last in force; a
// successful keepNodeMap then replaces it. Coming back to the map kept clears the mark.
func (s *Server) supersedeKeptNodeMap(m *nodemap.Map) {
	s.keepMu.Lock()
	defer s.keepMu.Unlock()
	rec, err := s.store.NodeMapInfo()
	switch {
	case err != nil: // none kept, or unusable at the next start anyway
		return
	case rec.Digest == m.Digest():
		if rec.SupersededBy == "" {
			return
		}
		err = s.store.MarkNodeMapSuperseded("", time.Time{})
	case rec.SupersededBy == m.Digest():
		return
	default:
		err = s.store.MarkNodeMapSuperseded(m.Digest(), time.Now())
	}
	if err != nil {
		s.log.Error("the node map kept in the store could not be marked: until the map in force is kept, "+
			"a restart without a good nodes file may route with the wrong map", "err", err, "kept_digest", rec.Digest)
	}
}
