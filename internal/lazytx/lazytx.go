// Package lazytx is a pgx.Tx that saves round trips on short transactions.
//
// Its BEGIN, with any set-up statements (SET LOCAL ...), travels in one pgx
// batch with its first statement, and the statements it is told to defer
// travel in one batch with its COMMIT. A transaction of one statement thus
// costs two round trips instead of three or more.
//
// The transaction begins with its first statement, not when the Tx is made:
// its start time (now()) is that statement's, which matters where now()
// records when something arrived (docs/guarantees.md, §1).
package lazytx

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Options shape a Tx.
type Options struct {
	// Prelude are statements run right after BEGIN, in the same batch
	// (each a single statement: SET LOCAL, say).
	Prelude []string
	// Defer, if set, says which Exec statements are held back and sent
	// with the COMMIT instead (their results are then not seen by the
	// caller: only statements whose result nobody reads may be deferred).
	Defer func(sql string) bool
}

// Tx is a transaction on one connection whose BEGIN goes out with its first
// statement. Its owner ends it with Commit or Rollback; nested transactions
// are refused. It is not safe for concurrent use.
type Tx struct {
	conn     *pgx.Conn
	opts     Options
	begun    bool
	ended    bool
	deferred []statement
}

type statement struct {
	sql  string
	args []any
}

// New returns a transaction on conn that has not begun yet.
func New(conn *pgx.Conn, opts Options) *Tx {
	return &Tx{conn: conn, opts: opts}
}

// RiverNotify reports whether sql is River's insert notification
// (riverpgxv5's PGNotifyMany), whose result River does not read: deferred
// to the COMMIT, it is delivered exactly as before (a notification is sent
// when its transaction commits) one round trip sooner.
func RiverNotify(sql string) bool {
	return strings.HasPrefix(sql, "-- name: PGNotifyMany ")
}

// Begun reports whether BEGIN has been sent.
func (t *Tx) Begun() bool { return t.begun }

// Deferred is how many statements wait for the COMMIT.
func (t *Tx) Deferred() int { return len(t.deferred) }

var errEnded = errors.New("lazytx: the transaction has ended")

// ensureBegun sends BEGIN and the prelude on their own, for the calls that
// cannot carry them.
func (t *Tx) ensureBegun(ctx context.Context) error {
	if t.ended {
		return errEnded
	}
	if t.begun {
		return nil
	}
	b := t.beginBatch()
	t.begun = true
	if err := t.conn.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	return nil
}

func (t *Tx) beginBatch() *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	for _, s := range t.opts.Prelude {
		b.Queue(s)
	}
	return b
}

// withBegin sends BEGIN, the prelude and sql in one batch and returns the
// batch's results, positioned at sql's.
func (t *Tx) withBegin(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	if t.ended {
		return nil, errEnded
	}
	b := t.beginBatch()
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, b)
	t.begun = true
	for range 1 + len(t.opts.Prelude) {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("begin: %w", err)
		}
	}
	return br, nil
}

// Exec runs sql, with BEGIN if it is the first statement; a statement
// Options.Defer picks is held for the COMMIT and answers an empty tag.
func (t *Tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.ended {
		return pgconn.CommandTag{}, errEnded
	}
	if t.begun && t.opts.Defer != nil && t.opts.Defer(sql) {
		t.deferred = append(t.deferred, statement{sql: sql, args: args})
		return pgconn.CommandTag{}, nil
	}
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

// Query runs sql, with BEGIN if it is the first statement.
func (t *Tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.ended {
		return nil, errEnded
	}
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

// QueryRow runs sql as Query does and answers its first row.
func (t *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return &firstRow{rows: rows, err: err}
}

// Begin refuses: savepoints are not supported.
func (t *Tx) Begin(context.Context) (pgx.Tx, error) {
	return nil, errors.New("lazytx: nested transactions are not supported")
}

// Commit sends the deferred statements and COMMIT in one batch. A
// transaction that never began has nothing to commit. An error from a
// deferred statement, or a COMMIT answered ROLLBACK (an earlier statement
// failed), is an error: nothing was committed.
func (t *Tx) Commit(ctx context.Context) error {
	if t.ended {
		return errEnded
	}
	t.ended = true
	if !t.begun {
		return nil
	}
	b := &pgx.Batch{}
	for _, s := range t.deferred {
		b.Queue(s.sql, s.args...)
	}
	b.Queue("COMMIT")
	br := t.conn.SendBatch(ctx, b)
	var err error
	for range t.deferred {
		if _, e := br.Exec(); e != nil && err == nil {
			err = e
		}
	}
	tag, e := br.Exec()
	if cerr := br.Close(); e == nil {
		e = cerr
	}
	if err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	// COMMIT of a transaction that a failed statement aborted answers
	// ROLLBACK, not an error: nothing was committed.
	if tag.String() != "COMMIT" {
		return fmt.Errorf("commit: the transaction was rolled back (%s)", tag)
	}
	return nil
}

// Rollback ends the transaction without committing; after Commit it does
// nothing. A connection whose ROLLBACK failed must not be reused.
func (t *Tx) Rollback(ctx context.Context) error {
	if t.ended {
		return nil
	}
	t.ended = true
	if !t.begun {
		return nil
	}
	if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// CopyFrom runs COPY FROM in the transaction.
func (t *Tx) CopyFrom(ctx context.Context, name pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.ensureBegun(ctx); err != nil {
		return 0, err
	}
	return t.conn.CopyFrom(ctx, name, cols, src)
}

// SendBatch sends b in the transaction.
func (t *Tx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.ensureBegun(ctx); err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return t.conn.SendBatch(ctx, b)
}

// LargeObjects is not supported: its zero value.
func (t *Tx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

// Prepare prepares sql on the connection.
func (t *Tx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.conn.Prepare(ctx, name, sql)
}

// Conn is the transaction's connection.
func (t *Tx) Conn() *pgx.Conn { return t.conn }

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

var _ pgx.Tx = (*Tx)(nil)
