package relay

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/nodemap"
	"github.com/keel-relay/keel/storage"
)

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
