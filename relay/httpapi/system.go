package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
)

// Status is the relay's status: the data of system/status on the relay API listener, and
// the whole answer of /status on the admin listener.
type Status struct {
	Status       string        `json:"status"` // ok | disk_full | draining
	Version      string        `json:"version"`
	NodeID       string        `json:"node_id"`
	Role         string        `json:"role"`
	UptimeSec    int64         `json:"uptime_seconds"`
	NodeMap      NodeMapStatus `json:"node_map"`
	Files        int64         `json:"files_stored"`
	QueueDepth   int64         `json:"queue_depth"`
	StoreBytes   int64         `json:"store_bytes"`
	EdgeDaemons  int           `json:"edge_daemons_connected"`
	NodesFile    string        `json:"nodes_file,omitempty"`
	StatusReason string        `json:"reason,omitempty"`
	// Disk is the free space of data_dir's file system (absent where it cannot be measured).
	Disk *DiskStatus `json:"disk,omitempty"`
	// Memory is the memory budget, its split and the memory in use.
	Memory *MemoryStatus `json:"memory,omitempty"`
	// AgentUploads counts the agents' uploads kept for delivery upstream (a relay only).
	AgentUploads *AgentUploadsStatus `json:"agent_uploads,omitempty"`
}

// AgentUploadsStatus is the "agent_uploads" object of /system/status: the agents' uploads
// waiting for delivery upstream, and those kept aside as failed (`keel-relay uploads`).
type AgentUploadsStatus struct {
	Waiting          int64 `json:"waiting"`
	Failed           int64 `json:"failed"`
	WaitingBytes     int64 `json:"waiting_bytes"`
	OldestWaitingSec int64 `json:"oldest_waiting_seconds"`
}

// DiskStatus is the free space of data_dir's file system, as the store sees it.
type DiskStatus struct {
	FreeBytes int64 `json:"free_bytes"`
	// NeedBytes is what writes must leave free: below it they are refused (507,
	// ResourceExhausted). It is the reserve, plus what the ballast lacks.
	NeedBytes    int64 `json:"need_bytes"`
	ReserveBytes int64 `json:"reserve_bytes"`
	// BallastBytes is the space held in data_dir/disk-reserve, released to the database
	// when the disk fills up; BallastWantBytes the size it should have.
	BallastBytes     int64 `json:"ballast_bytes"`
	BallastWantBytes int64 `json:"ballast_want_bytes"`
	Full             bool  `json:"full"`
}

// NodeMapStatus describes the node map in force.
type NodeMapStatus struct {
	Nodes     int       `json:"nodes"`
	LoadedAt  time.Time `json:"loaded_at"`
	Digest    string    `json:"digest,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	// Kept says the map in force is the one kept in the store, which a restart with a broken or
	// missing nodes file routes with; KeepError says why it is not, when keeping it failed.
	Kept      bool   `json:"kept"`
	KeepError string `json:"keep_error,omitempty"`
}

// MemoryStatus is the "memory" object of /system/status: the budget, its split, and the
// memory in use.
type MemoryStatus struct {
	LimitBytes   int64       `json:"limit_bytes"` // 0: no limit known
	Source       string      `json:"source"`
	GoLimitBytes int64       `json:"go_limit_bytes"` // the Go runtime's memory limit in force
	NearAtBytes  int64       `json:"near_at_bytes"`  // from here new work is refused; 0: never
	InUseBytes   int64       `json:"in_use_bytes"`   // held by the Go runtime (released pages aside)
	NearLimit    bool        `json:"near_limit"`
	Split        MemorySplit `json:"split"`
}

// MemorySplit is the settings in force after the budget lowered them.
type MemorySplit struct {
	MemTableSize         int64    `json:"mem_table_size"`
	NumMemtables         int      `json:"num_memtables"`
	BlockCacheSize       int64    `json:"block_cache_size"`
	IndexCacheSize       int64    `json:"index_cache_size"`
	MaxConnections       int      `json:"max_connections"`
	MaxConcurrentUploads int      `json:"max_concurrent_uploads"`
	UploadCostBytes      int64    `json:"upload_cost_bytes"`
	EdgeMaxStreams       int      `json:"edge_max_streams"`
	EdgeMaxConnections   int      `json:"edge_max_connections"` // 0: no bound
	RemoteRunMaxCalls    int      `json:"remote_run_max_calls"`
	RemoteRunOutputLines int      `json:"remote_run_output_lines"`
	Lowered              []string `json:"lowered,omitempty"`
}

// The actions of relayd's envelope, one per system endpoint of the relay API listener.
const (
	ActionStatus = "getStatus"
	ActionInfo   = "getSystemInfo"
	ActionReload = "reloadConfiguration"
)

// ReloadSuccess is the whole body of a successful POST .../system/reload on the relay API
// listener: `rudder relay reload` compares it byte for byte (no newline).
const ReloadSuccess = `{"result":"success","action":"reloadConfiguration"}`

// Envelope is relayd's frame around the answers of system/status and system/info on the
// relay API listener (SPEC-relay-box.md "System endpoints"): Keel's document is Data.
type Envelope[T any] struct {
	Data   T      `json:"data"`
	Result string `json:"result"` // "success"
	Action string `json:"action"` // ActionStatus | ActionInfo
}

// ReloadError is relayd's answer (with a 500) to a reload that failed.
type ReloadError struct {
	Result       string `json:"result"` // "error"
	Action       string `json:"action"` // ActionReload
	ErrorDetails string `json:"errorDetails"`
}

// DecodeStatus reads the body of GET .../system/status on the relay API listener (the
// Status inside relayd's envelope). The admin listener's /status is a bare Status.
func DecodeStatus(body []byte) (Status, error) {
	var env Envelope[Status]
	if err := json.Unmarshal(body, &env); err != nil {
		return Status{}, fmt.Errorf("system/status: %w", err)
	}
	if env.Result != "success" || env.Action != ActionStatus {
		return Status{}, fmt.Errorf("system/status: result %q, action %q; want \"success\", %q", env.Result, env.Action, ActionStatus)
	}
	return env.Data, nil
}

// status is system/status of the relay API listener: Keel's Status in relayd's envelope,
// with the HTTP status Keel gives it (503 while draining or with a full disk; the result
// stays "success": the status was read, and it says why the relay is not healthy).
func (a *API) status(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	st, code := a.opts.System.Status()
	WriteCompactJSON(w, code, Envelope[Status]{Data: st, Result: "success", Action: ActionStatus})
}

// adminStatus is the admin listener's /status: the bare Status, for operators.
func (a *API) adminStatus(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	st, code := a.opts.System.Status()
	WriteJSON(w, code, st)
}

func (a *API) info(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	WriteCompactJSON(w, http.StatusOK, Envelope[map[string]any]{Data: a.opts.System.Info(), Result: "success", Action: ActionInfo})
}

// reload is system/reload of the relay API listener, answered as relayd does: exactly
// ReloadSuccess, or a ReloadError with a 500.
func (a *API) reload(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	if err := a.opts.System.Reload(); err != nil {
		WriteCompactJSON(w, http.StatusInternalServerError, ReloadError{Result: "error", Action: ActionReload, ErrorDetails: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(ReloadSuccess)))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, ReloadSuccess)
}

// adminReload is the admin listener's /reload: Keel's own answer, with the node count.
func (a *API) adminReload(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	sys := a.opts.System
	if err := sys.Reload(); err != nil {
		WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"reloaded": false, "error": err.Error(), "nodes": sys.Nodes()})
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"reloaded": true, "nodes": sys.Nodes()})
}

// backup streams an online backup of the whole store (used by `keel-relay backup` while the
// daemon holds the store).
func (a *API) backup(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := a.opts.System.Backup(w); err != nil {
		a.opts.Log.Error("online backup failed", "err", err)
		// The status is already sent; abort the stream so the client sees a broken body.
		panic(http.ErrAbortHandler)
	}
}

// WriteCompactJSON answers code with v as compact JSON and no newline, as relayd writes it
// (no HTML escaping of <, > and &).
func WriteCompactJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// WriteJSON answers code with v as indented JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
