package edged

import (
	"context"
	"math/rand/v2"
	"os"
	"time"
)

// credentialTimeout bounds loading or rotating the credentials from the running daemon:
// one unary call to the relay plus the file lock.
const credentialTimeout = rpcTimeout + 5*time.Second

// refreshRetry is the mean delay before a failed token refresh is tried again (jittered
// by ±50%).
const refreshRetry = 30 * time.Second

// Credentials returns the credentials in use.
func (d *Daemon) Credentials() *Credentials {
	d.credMu.RLock()
	defer d.credMu.RUnlock()
	return d.creds
}

// installCreds makes c the credentials in use, remembering the token file as it is now
// so that reloadIfChanged sees a later change.
func (d *Daemon) installCreds(c *Credentials) {
	d.credMu.Lock()
	defer d.credMu.Unlock()
	d.installCredsLocked(c)
}

// installCredsLocked is installCreds for a caller holding d.credMu exclusively.
func (d *Daemon) installCredsLocked(c *Credentials) {
	st, _ := os.Stat(d.paths.Token)
	d.creds, d.credStamp = c, st
}

// tokenFileChanged reports whether the token file is not the one last loaded (false
// when it cannot be read: the credentials in use stay).
func (d *Daemon) tokenFileChanged() bool {
	st, err := os.Stat(d.paths.Token)
	if err != nil {
		return false
	}
	d.credMu.RLock()
	prev := d.credStamp
	d.credMu.RUnlock()
	return prev == nil || !os.SameFile(prev, st) || !prev.ModTime().Equal(st.ModTime()) || prev.Size() != st.Size()
}

// reloadIfChanged reloads the credentials when the token file changed on disk (another
// process rotated the key or enrolled again).
func (d *Daemon) reloadIfChanged(ctx context.Context) {
	if !d.tokenFileChanged() {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, credentialTimeout)
	defer cancel()
	creds, err := LoadCredentials(lctx, d.paths, d.log)
	if err != nil {
		d.log.Error("edge: the token file changed but cannot be used", "err", err)
		return
	}
	d.installCreds(creds)
	d.log.Info("edge: credentials reloaded from disk", "node_id", creds.NodeID, "token_expires", creds.Claims.Expiry)
}

// refresher watches the credential files and refreshes the token before it expires.
func (d *Daemon) refresher(life context.Context) {
	t := time.NewTicker(d.opts.CredentialPoll)
	defer t.Stop()
	var nextTry time.Time
	for {
		select {
		case <-life.Done():
			return
		case <-t.C:
		}
		d.reloadIfChanged(life)
		c := d.Credentials()
		now := time.Now()
		if now.Before(c.RefreshAt(d.opts.RefreshFraction)) || now.Before(nextTry) {
			continue
		}
		if retry, failed := d.refresh(life, c); failed {
			nextTry = time.Now().Add(retry)
		}
	}
}

// refresh replaces the token c holds, which nears its expiry, by rotating the key (the
// spec has no refresh RPC). When that fails it returns how long to wait before trying
// again and true.
func (d *Daemon) refresh(life context.Context, c *Credentials) (time.Duration, bool) {
	d.log.Info("edge: token nearing expiry; rotating the key for a new one", "expires", c.Claims.Expiry)
	rctx, cancel := context.WithTimeout(life, credentialTimeout)
	defer cancel()
	if err := d.RotateKey(rctx); err != nil {
		retry := time.Duration(float64(refreshRetry) * (0.5 + rand.Float64()))
		d.log.Error("edge: token refresh failed", "err", err, "expires", c.Claims.Expiry, "retry_in", retry.Round(time.Second))
		return retry, true
	}
	return 0, false
}
