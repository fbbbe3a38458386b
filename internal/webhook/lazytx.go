package webhook

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A batch's transaction begins with its first statement: BEGIN and that
// statement (River's insert) travel in one pgx batch, one round trip, so a
// batch costs two round trips (begin+insert, commit) instead of three.
//
// The transaction must not begin earlier, say with the previous batch's
// commit: its start time (now()) is the time the batch's events are
// recorded at (the jobs' created_at, the dirty and event marks), which must
// not precede any of the batch's deliveries, or a running sync could take
// an event that arrived during its fetch for one that came before it.

// Acquirer hands out pool connections: a *pgxpool.Pool.
type Acquirer interface {
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}

// lazyTx is the pgx.Tx that River's InsertManyTx and the jobs package write
// a batch through. Its BEGIN is sent with its first statement; the writer
// commits or rolls back on the connection itself, so Commit, Rollback and
// nested transactions are refused.
type lazyTx struct {
	conn  *pgx.Conn
	begun bool
}

var errWriterOwned = errors.New("webhook: the batch transaction is committed by its writer")

// ensureBegun sends BEGIN on its own, for the calls that cannot carry it.
func (t *lazyTx) ensureBegun(ctx context.Context) error {
	if t.begun {
		return nil
	}
	if _, err := t.conn.Exec(ctx, "BEGIN"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t.begun = true
	return nil
}

// withBegin sends BEGIN and sql in one batch and returns the batch's
// results, positioned at sql's.
func (t *lazyTx) withBegin(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, b)
	t.begun = true
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, fmt.Errorf("begin: %w", err)
	}
	return br, nil
}

func (t *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.begun {
		return t.conn.Exec(ctx, sql, args...)
	}
	br, err := t.withBegin(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.begun {
		return t.conn.Query(ctx, sql, args...)
	}
	br, err := t.withBegin(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t *lazyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return &firstRow{rows: rows, err: err}
}

func (t *lazyTx) Begin(context.Context) (pgx.Tx, error) {
	return nil, errors.New("webhook: nested transactions are not supported in a batch")
}

func (t *lazyTx) Commit(context.Context) error   { return errWriterOwned }
func (t *lazyTx) Rollback(context.Context) error { return errWriterOwned }

func (t *lazyTx) CopyFrom(ctx context.Context, name pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.ensureBegun(ctx); err != nil {
		return 0, err
	}
	return t.conn.CopyFrom(ctx, name, cols, src)
}

func (t *lazyTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.ensureBegun(ctx); err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return t.conn.SendBatch(ctx, b)
}

func (t *lazyTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *lazyTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.conn.Prepare(ctx, name, sql)
}

func (t *lazyTx) Conn() *pgx.Conn { return t.conn }

// batchRows are the rows of the statement sent with BEGIN; closing them
// also ends the batch, so the connection can be used again.
type batchRows struct {
	pgx.Rows
	br       pgx.BatchResults
	closed   bool
	closeErr error
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.closeErr = r.br.Close()
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.closeErr
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	// Done: end the batch now, so that Err reports its end too.
	r.Close()
	return false
}

// firstRow is QueryRow's answer from Query's rows.
type firstRow struct {
	rows pgx.Rows
	err  error
}

func (r *firstRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
