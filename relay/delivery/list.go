package delivery

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/keel-relay/keel/internal/wire/uploadname"
	"github.com/keel-relay/keel/relay/httpapi"
	"github.com/keel-relay/keel/storage"
)

// Listed is one kept upload as the operator's listing shows it (GET /uploads).
type Listed struct {
	Kind     string    `json:"kind"`
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Received time.Time `json:"received"`
	// Due is when the next attempt may start (waiting uploads only).
	Due        *time.Time `json:"due,omitempty"`
	Attempts   int        `json:"attempts"`
	LastError  string     `json:"last_error,omitempty"`
	Failed     bool       `json:"failed"`
	FailReason string     `json:"fail_reason,omitempty"`
}

// DefaultListLimit is how many uploads a listing returns without ?limit; MaxListLimit the
// most it returns.
const (
	DefaultListLimit = 1000
	MaxListLimit     = 10000
)

// ListHandler serves the operator's listing of the kept uploads, in arrival order, as a JSON
// array: GET /uploads?state=waiting|failed (default waiting) [&kind=inventories|
// inventory-updates|reports] [&limit=N] (default DefaultListLimit, at most MaxListLimit).
// The answer says how many there are in X-Total-Count (in that state, of that kind or all).
func ListHandler(store *storage.Store, log *slog.Logger) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		q := r.URL.Query()
		failed := false
		switch q.Get("state") {
		case "", "waiting":
		case "failed":
			failed = true
		default:
			http.Error(w, "state must be waiting or failed", http.StatusBadRequest)
			return
		}
		kind := q.Get("kind")
		if kind != "" {
			if _, ok := uploadname.ParseKind(kind); !ok {
				http.Error(w, "kind must be inventories, inventory-updates or reports", http.StatusBadRequest)
				return
			}
		}
		limit := DefaultListLimit
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxListLimit {
				http.Error(w, "limit must be a number from 1 to "+strconv.Itoa(MaxListLimit), http.StatusBadRequest)
				return
			}
			limit = n
		}
		list := make([]Listed, 0, min(limit, 256))
		err := store.AgentUploads(kind, failed, func(a storage.AgentUpload) bool {
			l := Listed{Kind: a.Kind, Name: a.Name, Size: a.Size, Received: a.Received.UTC(), Attempts: a.Attempts,
				LastError: a.LastError, Failed: a.Failed, FailReason: a.FailReason}
			if !a.Failed {
				due := a.Due.UTC()
				l.Due = &due
			}
			list = append(list, l)
			return len(list) < limit
		})
		if err != nil {
			log.Error("list agent uploads", "err", err)
			http.Error(w, "cannot list the uploads: "+err.Error(), http.StatusInternalServerError)
			return
		}
		st := store.AgentUploadStats()
		if kind != "" {
			st = store.AgentUploadStatsOf(kind)
		}
		total := st.Waiting
		if failed {
			total = st.Failed
		}
		w.Header().Set("X-Total-Count", strconv.FormatInt(total, 10))
		httpapi.WriteJSON(w, http.StatusOK, list)
	}
}
