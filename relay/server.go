// Package relay assembles the keel-relay daemon; it is the one package that sees both the
// relay HTTP API's parts and the edge API. New opens the store, loads the node map and builds,
// over that one storage.Store:
//
//   - the relay API (package httpapi: routers and middleware) over its parts: shared files
//     (sharedfiles), forwarding and its queue worker (forward), remote run (remoterun), the
//     TTL cleaner (cleaner), the node map (nodemap) and the access lists (access);
//   - the edge gRPC API (edge/server) and its operator API (edge/admin), mounted on the
//     admin listener, and handed to remote run as its EdgeRunner;
//   - the memory budget (internal/membudget) that sizes all of them.
//
// Server.Run serves until its context ends, then drains; Reload re-reads the config and the
// node map; BackupStore and RestoreSigningKey serve `keel-relay backup|restore`. The files:
// server.go (build, listen, run, drain), edge.go (the edge API's options), status.go (the
// system endpoints), reload.go (reloads), nodemap.go (the node map and its copy in the
// store), memory.go, metrics.go, backup.go, waitdisk.go (serving while the disk is full).
package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	edgeadmin "github.com/keel-relay/keel/edge/admin"
	edgeserver "github.com/keel-relay/keel/edge/server"
	"github.com/keel-relay/keel/internal/connlimit"
	"github.com/keel-relay/keel/internal/membudget"
	"github.com/keel-relay/keel/internal/metrics"
	"github.com/keel-relay/keel/internal/sdnotify"
	"github.com/keel-relay/keel/relay/access"
	"github.com/keel-relay/keel/relay/admintoken"
	"github.com/keel-relay/keel/relay/agentuploads"
	"github.com/keel-relay/keel/relay/cleaner"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/delivery"
	"github.com/keel-relay/keel/relay/forward"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/relay/nodecerts"
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
	// Pressure tells when the relay is near its memory budget (uploads wait, edge streams and
	// remote-run calls are refused); nil means the runtime's own gauge (tests set their own).
	Pressure membudget.Pressure
	// Notify tells systemd when the relay serves (READY=1), reloads and drains, with a STATUS=
	// line; nil sends nothing.
	Notify *sdnotify.Notifier
}

// Server is a running keel-relay.
type Server struct {
	opts    Options
	log     *slog.Logger
	cfg     atomic.Pointer[config.Config]
	lists   atomic.Pointer[httpapi.Lists]
	store   *storage.Store
	nodes   *nodemap.Holder
	reg     *metrics.Registry
	m       *daemonMetrics
	front   *httpapi.API // the relay API's routers and middleware
	hops    *forward.Hops
	worker  *forward.Worker
	cleaner *cleaner.Cleaner
	files   *sharedfiles.Handler
	uploads *agentuploads.Handler // agents' uploads; nil at a root without agent_uploads.root_dir
	remote  *remoterun.Handler
	edge    *edgeserver.Server // nil when edge.enabled is false
	tls     *apiTLS            // the relay API listener's TLS (tlsfront.go)
	// nodeCerts are the node client certificates (tls.node_certs) the TLS listener accepts;
	// nodecerts.NodeID names the node of a request.
	nodeCerts *nodecerts.Holder

	plan     membudget.Plan     // the memory budget and its split
	gauge    *membudget.Gauge   // memory in use
	pressure membudget.Pressure // gauge, or Options.Pressure

	apiLn, adminLn net.Listener
	api, admin     *http.Server
	adminToken     admintoken.Token // zero when admin.token_file is empty

	started   time.Time
	draining  atomic.Bool
	diskUsage atomic.Int64
	// oldestQueued is when the oldest forward job was queued (Unix ms; 0: none), refreshed by watchDisk.
	oldestQueued atomic.Int64

	reloadMu    sync.Mutex
	nodeLoadErr atomic.Pointer[string]
	nodeLoaded  atomic.Pointer[time.Time]
	// keepMu serialises what the store keeps of the node map (keepNodeMap and
	// supersedeKeptNodeMap), so that it follows the order in which maps came into force.
	keepMu      sync.Mutex
	nodeKept    atomic.Pointer[string] // digest of the node map known to be kept in the store
	nodeKeepErr atomic.Pointer[string] // why the map in force is not kept; nil when it is

	// delivery delivers agents' uploads upstream (delivery.go); nil at the root.
	delivery *delivery.Worker
}

// buildLists builds the network access lists of cfg (policy server and metrics scrapers
// always include loopback).
func buildLists(cfg *config.Config) (*httpapi.Lists, error) {
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
	return &httpapi.Lists{Shared: shared, PolicyServer: ps, Metrics: scrapers}, nil
}

// New opens the store, loads the node map, builds the relay API and the edge API and binds
// the listeners; Run serves.
func New(cfg *config.Config, opts Options) (s *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	s = &Server{opts: opts, log: opts.Logger, reg: metrics.NewRegistry(), started: time.Now()}
	s.cfg.Store(cfg)
	lists, err := buildLists(cfg)
	if err != nil {
		return nil, err
	}
	s.lists.Store(lists)
	s.planMemory(cfg)
	if err := s.openStore(cfg); err != nil {
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

	s.nodes = nodemap.NewHolder(cfg.NodeID, s.log.With("component", "nodemap"))
	s.nodes.BeforeInstall(s.supersedeKeptNodeMap)
	s.m = newDaemonMetrics(s.reg, s)
	if err := s.loadNodeMap(); err != nil {
		s.log.Error("node map not loaded", "err", err)
	}
	if err := s.buildSharedFiles(cfg); err != nil {
		return nil, err
	}
	s.buildDelivery(cfg)
	if err := s.buildUploads(cfg); err != nil {
		return nil, err
	}
	if err := s.buildEdge(cfg); err != nil {
		return nil, err
	}
	if err := s.buildRemoteRun(cfg); err != nil {
		return nil, err
	}
	if cfg.Admin.Listen != "" && cfg.Admin.TokenFile != "" {
		if s.adminToken, err = admintoken.LoadOrCreate(cfg.Admin.TokenFile); err != nil {
			return nil, fmt.Errorf("admin.token_file: %w", err)
		}
	}
	if err := s.buildTLSFront(cfg); err != nil {
		return nil, err
	}
	s.front = httpapi.New(s.frontOptions())
	if err := s.listen(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// planMemory works out the memory budget and its split, sets the Go memory limit, and picks
// the pressure gauge (Options.Pressure, else the runtime's).
func (s *Server) planMemory(cfg *config.Config) {
	plan, warnings := MemoryPlan(cfg)
	for _, w := range warnings {
		s.log.Warn(w)
	}
	logPlan(s.log, plan, applyGoLimit(plan))
	s.plan, s.gauge, s.pressure = plan, membudget.NewGauge(plan.NearAt), s.opts.Pressure
	if s.pressure == nil {
		s.pressure = s.gauge
	}
}

// openStore opens the store, sized by the memory plan.
func (s *Server) openStore(cfg *config.Config) error {
	so := storageOptions(cfg, s.plan)
	if !so.SyncWrites {
		s.log.Warn("storage.sync_writes is off: an acknowledged file can be lost in a power failure")
	}
	var err error
	s.store, err = storage.Open(so, s.log.With("component", "storage"))
	return err
}

// buildSharedFiles builds the shared-files handler with the forward hops, the forward queue
// worker and the TTL cleaner.
func (s *Server) buildSharedFiles(cfg *config.Config) error {
	log := s.log.With("component", "forward")
	var err error
	s.hops, err = forward.NewHops(forward.HopOptions{
		Upstream: cfg.Upstream, SubRelayURL: cfg.Forward.SubRelayURL, AllowHTTP: cfg.Forward.AllowHTTP,
		CAFile: cfg.Forward.TLS.CAFile, UpstreamKeyHash: cfg.Forward.TLS.KeyHash,
		InsecureSkipVerify: cfg.Forward.TLS.InsecureSkipVerify,
	}, s.nodes.Current, log)
	if err != nil {
		return err
	}
	s.worker = forward.NewWorker(s.store, s.hops, forward.WorkerOptions{
		MinBackoff: cfg.Forward.MinBackoff, MaxBackoff: cfg.Forward.MaxBackoff,
		Concurrency: cfg.Forward.Concurrency, AttemptTimeout: cfg.Forward.AttemptTimeout,
	}, forward.NewMetrics(s.reg), log)
	s.cleaner = cleaner.New(s.store, cfg.SharedFiles.CleanupInterval, cleaner.NewMetrics(s.reg), s.log.With("component", "cleaner"))
	s.files = sharedfiles.New(sharedfiles.Options{
		Root:                 cfg.Role == config.RoleRoot,
		MaxBody:              func() int64 { return int64(s.cfg.Load().HTTP.MaxBody) },
		BodyIdleTimeout:      cfg.HTTP.BodyIdleTimeout,
		MaxConcurrentUploads: s.plan.UploadSlots,
		MaxUploadsPerClient:  cfg.HTTP.MaxUploadsPerClient,
		MinUploadRate:        int64(cfg.HTTP.MinUploadRate),
		UploadSlotWait:       cfg.HTTP.UploadSlotWait,
		UploadPreemptRate:    int64(cfg.HTTP.UploadPreemptRate),
		Metrics:              s.reg,
		Pressure:             s.pressure,
	}, s.store, s.nodes.Current, s.hops, s.worker.Wake, s.log.With("component", "shared-files"))
	return nil
}

// buildEdge builds the edge gRPC API when edge.enabled.
func (s *Server) buildEdge(cfg *config.Config) error {
	if !cfg.Edge.Enabled {
		return nil
	}
	eo, err := edgeOptions(cfg, s.plan, s.pressure)
	if err != nil {
		return err
	}
	s.edge, err = edgeserver.New(eo, s.store, s.reg, s.log.With("component", "edge"))
	return err
}

// buildRemoteRun builds the remote-run handler. Remote runs go down only: sub-relays are
// reached with remote_run.sub_relay_url and verified like forwards (their key pin from the
// node map); a node with a live edge stream runs over it.
func (s *Server) buildRemoteRun(cfg *config.Config) error {
	log := s.log.With("component", "remote-run")
	runHops, err := forward.NewHops(forward.HopOptions{
		SubRelayURL: cfg.RemoteRun.SubRelayURL, AllowHTTP: cfg.Forward.AllowHTTP,
		InsecureSkipVerify: cfg.Forward.TLS.InsecureSkipVerify,
	}, s.nodes.Current, log)
	if err != nil {
		return err
	}
	var edgeRunner remoterun.EdgeRunner // nil: remote runs use remote_run.command only
	if s.edge != nil {
		edgeRunner = s.edge.Runner()
	}
	s.remote = remoterun.New(remoterun.Options{
		Command: cfg.RemoteRun.Command, Concurrency: cfg.RemoteRun.Concurrency,
		Timeout: cfg.RemoteRun.Timeout, MaxCalls: s.plan.RemoteRunCalls,
		OutputLines: s.plan.RemoteRunOutputLines, Pressure: s.pressure,
	}, s.nodes.Current, runHops, edgeRunner, remoterun.NewMetrics(s.reg), log)
	return nil
}

// frontOptions are the parts the relay API's routers serve.
func (s *Server) frontOptions() httpapi.Options {
	o := httpapi.Options{
		Lists: s.lists.Load, Files: s.files, Remote: s.remote, System: system{s}, AdminRoutes: s.adminRoutes(),
		BoxRoutes:  append(s.uploadRoutes(), s.downloadRoutes()...),
		AdminToken: s.adminToken, Metrics: s.reg, Log: s.log,
		RequestLog: func() string { return s.cfg.Load().HTTP.RequestLog },
	}
	if s.edge != nil {
		o.Edge = edgeadmin.New(edgeadmin.ServerBackend{S: s.edge}, s.log.With("component", "edge-admin"))
	}
	return o
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
	so.MaxAgentUploads = cfg.AgentUploads.MaxWaiting
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

// listenAPI opens the relay API's listener (http.listen, with TLS when tlsConf is not nil,
// and http.local_listen, plain, when set), with at most maxConns connections open at once (the memory plan's http.max_connections).
// While it is full, the idle keep-alive connections of srv are closed so that they do not
// starve new ones; listenAPI installs srv's ConnState hook for that.
func listenAPI(cfg *config.Config, maxConns int, srv *http.Server, tlsConf *tls.Config) (net.Listener, error) {
	raw, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	capped := connlimit.New(raw, maxConns)
	idle := &connlimit.IdleHTTP{}
	srv.ConnState = idle.ConnState
	capped.SetReclaim(func() { idle.CloseIdle() })
	var ln net.Listener = capped
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	if cfg.HTTP.LocalListen != "" {
		local, err := listenLocal(cfg.HTTP.LocalListen, maxConns, idle)
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		ln = mergeListeners(ln, local)
	}
	return ln, nil
}

// listen binds the relay API's listener and, when admin.listen is set, the admin listener.
func (s *Server) listen(cfg *config.Config) error {
	var err error
	s.api = s.httpServer(cfg, s.front.Handler(), "http")
	if s.apiLn, err = listenAPI(cfg, s.plan.APIConnections, s.api, s.tls.Config()); err != nil {
		return err
	}
	if cfg.Admin.Listen != "" {
		s.adminLn, err = net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			return fmt.Errorf("admin.listen: %w", err)
		}
		s.admin = s.httpServer(cfg, s.front.AdminHandler(), "admin")
	}
	return nil
}

// httpServer is the http.Server of one listener: the header and idle timeouts of the http
// section, 64 KiB of headers at most, net/http's own errors logged as warnings.
func (s *Server) httpServer(cfg *config.Config, h http.Handler, component string) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.With("component", component).Handler(), slog.LevelWarn),
	}
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
	workers.Go(func() { s.runDelivery(workCtx) })
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
	// The listeners were bound by New and are served from here on: a connection made now is
	// answered.
	s.notified(s.opts.Notify.Ready(s.statusLine()))

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

// statusLine is the STATUS= line systemctl status shows while the relay serves.
func (s *Server) statusLine() string {
	edge := "off"
	if s.edge != nil {
		edge = s.edge.Addr().String()
	}
	return fmt.Sprintf("serving: api %s, admin %s, edge %s, %d nodes", s.apiLn.Addr(), addrString(s.adminLn), edge, s.nodes.Current().Len())
}

// notified logs a notification systemd did not get (the unit then times out or restarts the
// relay: the log says why).
func (s *Server) notified(err error) {
	if err != nil {
		s.log.Warn("systemd notification not sent", "err", err)
	}
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
	s.notified(s.opts.Notify.Stopping("draining (shutdown_grace " + grace.String() + ")"))
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
	go func() { s.front.Wait(); close(done) }()
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

// refreshOldestQueued looks up when the oldest forward job was queued, keeps it for the
// metrics and returns it (Unix ms; 0: the queue is empty or could not be read).
func (s *Server) refreshOldestQueued() int64 {
	var ms int64
	if q, ok, err := s.store.OldestQueued(); err != nil {
		s.log.Warn("forward queue: oldest job not read", "err", err)
	} else if ok {
		ms = max(1, q.UnixMilli())
	}
	s.oldestQueued.Store(ms)
	return ms
}

// watchDisk refreshes the store's disk usage and the queue's oldest job for metrics and
// status (walking the data directory or the queue on every scrape would be wasteful).
func (s *Server) watchDisk(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		if n, err := s.store.DiskUsage(); err == nil {
			s.diskUsage.Store(n)
		}
		s.refreshOldestQueued()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
