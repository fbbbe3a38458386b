package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A writer's transactions are chained on one connection while deliveries
// keep coming: the statement that commits a batch also begins the next
// batch's transaction ("COMMIT; BEGIN", one round trip), so a batch costs
// two round trips (its insert, then the commit) instead of four (begin,
// insert, commit, and the next begin's wait). When no delivery arrives
// within chainIdle, the open transaction (which has done nothing: no
// snapshot, no locks, no transaction id) is rolled back and the connection
// returned to the pool, so an idle receiver holds nothing.

// chainIdle is how long a writer keeps its begun transaction open waiting
// for the next delivery.
const chainIdle = 50 * time.Millisecond

// Acquirer hands out pool connections: a *pgxpool.Pool.
type Acquirer interface {
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}

// chain is one writer's connection with a transaction begun on it.
type chain struct {
	db   Acquirer
	conn *pgxpool.Conn // nil when not holding one
}

// begin returns the chain's open transaction, acquiring a connection and
// beginning one when the chain holds none.
func (c *chain) begin(ctx context.Context) (pgx.Tx, error) {
	if c.conn == nil {
		conn, err := c.db.Acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("acquire: %w", err)
		}
		if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
			conn.Release()
			return nil, fmt.Errorf("begin: %w", err)
		}
		c.conn = conn
	}
	return &chainTx{conn: c.conn.Conn()}, nil
}

// commit commits the open transaction and begins the next one in the same
// round trip. On error the chain lets go of its connection.
func (c *chain) commit(ctx context.Context) error {
	if c.conn == nil {
		return errors.New("commit: no transaction")
	}
	// No arguments: pgx sends this as one simple-protocol query, whose
	// statements run in order and stop at the first error (a failed
	// COMMIT leaves no transaction begun).
	if _, err := c.conn.Exec(ctx, "COMMIT; BEGIN"); err != nil {
		c.drop()
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// rollback ends the open transaction and gives the connection back.
func (c *chain) rollback() {
	if c.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := c.conn.Exec(ctx, "ROLLBACK"); err != nil {
		// Releasing a connection that is not idle closes it.
		c.conn.Conn().PgConn().Close(ctx)
	}
	c.conn.Release()
	c.conn = nil
}

// drop gives the connection back after an error: the pool closes a
// connection returned in a transaction or broken.
func (c *chain) drop() {
	if c.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c.conn.Conn().PgConn().TxStatus() != 'I' {
		if _, err := c.conn.Exec(ctx, "ROLLBACK"); err != nil {
			c.conn.Conn().PgConn().Close(ctx)
		}
	}
	c.conn.Release()
	c.conn = nil
}

// chainTx is the pgx.Tx that River's InsertManyTx and the jobs package
// write through: the statements of a transaction that the chain begins and
// ends itself. Commit, Rollback and nested transactions are refused.
type chainTx struct {
	conn *pgx.Conn
}

var errChainOwned = errors.New("webhook: the batch transaction is committed by its writer")

func (t *chainTx) Begin(context.Context) (pgx.Tx, error) {
	return nil, errors.New("webhook: nested transactions are not supported in a batch")
}

func (t *chainTx) Commit(context.Context) error   { return errChainOwned }
func (t *chainTx) Rollback(context.Context) error { return errChainOwned }

func (t *chainTx) CopyFrom(ctx context.Context, name pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	return t.conn.CopyFrom(ctx, name, cols, src)
}

func (t *chainTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.conn.SendBatch(ctx, b)
}

func (t *chainTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *chainTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.conn.Prepare(ctx, name, sql)
}

func (t *chainTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.conn.Exec(ctx, sql, args...)
}

func (t *chainTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.conn.Query(ctx, sql, args...)
}

func (t *chainTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.conn.QueryRow(ctx, sql, args...)
}

func (t *chainTx) Conn() *pgx.Conn { return t.conn }
