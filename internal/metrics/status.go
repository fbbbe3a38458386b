package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/provider"
)

// StatusRecorder keeps what `usersync status` reports per provider (last
// webhook, last successful sync, last error, bad credentials) and writes it
// to the provider_status table at most once per flush interval, off the hot
// path.
type StatusRecorder struct {
	mu    sync.Mutex
	dirty map[string]*providerStatus
	// db and schema are set by Run: a credential rejection is written at
	// once, so that `usersync status` never sees the failed job before it.
	db     execer
	schema string
	red    *provider.Redactor
}

type execer = store.DB

// SetRedactor makes the recorder scrub credentials from the errors it keeps
// (they are shown by `usersync status`). Call it before recording.
func (s *StatusRecorder) SetRedactor(r *provider.Redactor) {
	s.mu.Lock()
	s.red = r
	s.mu.Unlock()
}

type providerStatus struct {
	lastWebhook, lastSync, lastError, badCreds time.Time
	errMsg                                     string
}

// NewStatusRecorder returns an empty recorder.
func NewStatusRecorder() *StatusRecorder {
	return &StatusRecorder{dirty: map[string]*providerStatus{}}
}

func (s *StatusRecorder) get(p string) *providerStatus {
	st, ok := s.dirty[p]
	if !ok {
		st = &providerStatus{}
		s.dirty[p] = st
	}
	return st
}

// Webhook records a delivery accepted for provider p.
func (s *StatusRecorder) Webhook(p string) {
	s.mu.Lock()
	s.get(p).lastWebhook = time.Now()
	s.mu.Unlock()
}

// Synced records a successful sync for provider p.
func (s *StatusRecorder) Synced(p string) {
	s.mu.Lock()
	s.get(p).lastSync = time.Now()
	s.mu.Unlock()
}

// Failed records a failed sync for provider p.
func (s *StatusRecorder) Failed(p, kind string, err error) {
	s.mu.Lock()
	st := s.get(p)
	st.lastError = time.Now()
	st.errMsg = s.red.Redact(kind + ": " + err.Error())
	if len(st.errMsg) > 500 {
		st.errMsg = st.errMsg[:500]
	}
	urgent := kind == "bad_credentials"
	if urgent {
		st.badCreds = st.lastError
	}
	db, schema := s.db, s.schema
	s.mu.Unlock()
	if urgent && db != nil {
		// Before the worker returns, hence before River records the job's
		// error: status then reports the rejection as soon as it reports
		// the error. A failure here leaves it for the next timed flush.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.Flush(ctx, db, schema)
	}
}

// Attach names the database that a credential rejection is written to at
// once (Run attaches the one it flushes to).
func (s *StatusRecorder) Attach(db execer, internalSchema string) {
	s.mu.Lock()
	s.db, s.schema = db, internalSchema
	s.mu.Unlock()
}

// Run flushes recorded status every interval until ctx is done, then once
// more.
func (s *StatusRecorder) Run(ctx context.Context, db execer, internalSchema string, interval time.Duration, logger *slog.Logger) {
	s.Attach(db, internalSchema)
	defer func() {
		s.mu.Lock()
		s.db = nil
		s.mu.Unlock()
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = s.Flush(fctx, db, internalSchema)
			cancel()
			return
		case <-t.C:
			if err := s.Flush(ctx, db, internalSchema); err != nil && ctx.Err() == nil {
				logger.Debug("status flush failed", "err", err)
			}
		}
	}
}

// Flush writes what was recorded since the last flush. What it could not
// write is kept for the next one.
func (s *StatusRecorder) Flush(ctx context.Context, db execer, internalSchema string) (err error) {
	s.mu.Lock()
	pending := s.dirty
	s.dirty = map[string]*providerStatus{}
	s.mu.Unlock()
	defer func() {
		if err != nil {
			s.restore(pending)
		}
	}()
	nt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	// The binary runs River in the internal schema; provider_status is
	// usersync's own table.
	st := store.New(store.Schemas{Internal: internalSchema})
	for p, ps := range pending {
		var msg *string
		if ps.errMsg != "" {
			msg = &ps.errMsg
		}
		if err := st.Status.Flush(ctx, db, store.ProviderStatus{Provider: p, LastWebhookAt: nt(ps.lastWebhook), LastSyncAt: nt(ps.lastSync),
			LastError: msg, LastErrorAt: nt(ps.lastError), BadCredentialsAt: nt(ps.badCreds), CredentialsOKAt: nt(ps.lastSync)}); err != nil {
			return err
		}
		delete(pending, p)
	}
	return nil
}

// restore merges statuses a failed flush did not write back into what is
// waiting, keeping the newer of each field.
func (s *StatusRecorder) restore(pending map[string]*providerStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	later := func(a, b time.Time) time.Time {
		if b.After(a) {
			return b
		}
		return a
	}
	for p, old := range pending {
		cur := s.get(p)
		cur.lastWebhook = later(cur.lastWebhook, old.lastWebhook)
		cur.lastSync = later(cur.lastSync, old.lastSync)
		cur.badCreds = later(cur.badCreds, old.badCreds)
		if old.lastError.After(cur.lastError) {
			cur.lastError, cur.errMsg = old.lastError, old.errMsg
		}
	}
}
