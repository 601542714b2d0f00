package relay

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/keel-relay/keel/internal/logging"
	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/httpapi"
)

// Reload re-reads the config file, the node map, the node client certificates and the relay
// API's TLS key pair. Settings that can change live (log
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
	if err := s.tls.Reload(); err != nil {
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
func (s *Server) applyConfig(old, cfg *config.Config, lists *httpapi.Lists) *config.Config {
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
