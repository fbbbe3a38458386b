package app

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5"
)

type pgxTx = pgx.Tx

// riverLogger is the process logger for River, one level quieter: River's
// routine Info lines (elections, maintenance) become Debug.
func riverLogger(l *slog.Logger) *slog.Logger {
	return slog.New(quieter{l.Handler()})
}

type quieter struct{ slog.Handler }

func (q quieter) Enabled(ctx context.Context, lvl slog.Level) bool {
	if lvl == slog.LevelInfo {
		lvl = slog.LevelDebug
	}
	return q.Handler.Enabled(ctx, lvl)
}

func (q quieter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo {
		r.Level = slog.LevelDebug
	}
	return q.Handler.Handle(ctx, r)
}

func (q quieter) WithAttrs(as []slog.Attr) slog.Handler { return quieter{q.Handler.WithAttrs(as)} }
func (q quieter) WithGroup(n string) slog.Handler       { return quieter{q.Handler.WithGroup(n)} }
