package app

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/usersync/usersync/internal/migrate"
	"riverqueue.com/riverui"
)

// Server is usersync's HTTP surface (docs/http.md).
type Server struct {
	core    *Core
	ui      *riverui.Handler
	Handler http.Handler
}

// NewServer builds the mux: webhooks, health, metrics and (with credentials)
// the River UI.
func NewServer(ctx context.Context, core *Core) (*Server, error) {
	cfg, logger := core.Env.Config, core.Env.Logger
	s := &Server{core: core}
	mux := http.NewServeMux()
	wh, err := core.Engine.WebhookHandler(core.River)
	if err != nil {
		return nil, err
	}
	mux.Handle("/webhooks/{provider}", wh)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", core.Engine.MetricsHandler())
	if cfg.UIUser != "" {
		ui, err := riverui.NewHandler(&riverui.HandlerOpts{
			Endpoints: riverui.NewEndpoints(core.River, nil),
			Logger:    riverLogger(logger),
			Prefix:    "/riverui",
		})
		if err != nil {
			return nil, fmt.Errorf("river UI: %w", err)
		}
		if err := ui.Start(ctx); err != nil {
			return nil, fmt.Errorf("river UI: %w", err)
		}
		s.ui = ui
		guarded := newLoginGuard(cfg.UIUser, cfg.UIPassword, logger, nil).wrap(sameOrigin(ui))
		mux.Handle("/riverui", guarded)
		mux.Handle("/riverui/", guarded)
		logger.Info("River UI at /riverui/ (basic auth)")
	} else {
		logger.Info("River UI is off: set USERSYNC_UI_USER and USERSYNC_UI_PASSWORD to turn it on")
	}
	s.Handler = mux
	return s, nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.core.Pool.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "database unreachable")
		return
	}
	if err := migrate.Check(ctx, s.core.Pool, s.core.Env.Plan()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err.Error())
		return
	}
	if s.core.Working {
		select {
		case <-s.core.River.Stopped():
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "job workers stopped")
			return
		default:
		}
	}
	fmt.Fprintln(w, "ready")
}

// sameOrigin refuses cross-site requests to the UI's mutating endpoints
// (cancel, retry, delete, pause): basic auth alone is sent by browsers on
// cross-site requests too.
func sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
				http.Error(w, "cross-site request refused", http.StatusForbidden)
				return
			}
			if o := r.Header.Get("Origin"); o != "" {
				u, err := url.Parse(o)
				if err != nil || !strings.EqualFold(u.Host, r.Host) {
					http.Error(w, "cross-origin request refused", http.StatusForbidden)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
