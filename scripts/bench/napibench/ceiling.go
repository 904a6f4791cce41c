package napibench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/xpeditis/notify/scripts/bench/proccpu"
)

// CopyResult is the ceiling: the same rows written by one COPY.
type CopyResult struct {
	Rows        int
	Duration    time.Duration // from COPY start to commit
	PostgresCPU time.Duration // of the backend that ran it; 0 when unknown
}

// Rate of the COPY in rows per second.
func (c CopyResult) Rate() float64 { return rate(c.Rows, c.Duration) }

// copyCeiling reads back the run's rows and writes them with one COPY into
// an empty table with the same columns, indexes and constraints, timing the
// COPY from its start to its commit.
func copyCeiling(ctx context.Context, db *sqlx.DB, run string, ids []string) (*CopyResult, error) {
	type row struct {
		ID, UserID, OrgID, EventID, Type, Priority, Title, Message, Data string
		ReadAt                                                           *time.Time
		CreatedAt                                                        time.Time
	}
	q := `SELECT id::text, user_id, org_id, event_id, type, priority, title, message, data::text, read_at, created_at
		FROM notifications WHERE event_id = ANY($1)`
	sqlRows, err := db.QueryContext(ctx, q, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("read rows for copy: %w", err)
	}
	var rows []row
	for sqlRows.Next() {
		var r row
		if err := sqlRows.Scan(&r.ID, &r.UserID, &r.OrgID, &r.EventID, &r.Type, &r.Priority, &r.Title, &r.Message, &r.Data, &r.ReadAt, &r.CreatedAt); err != nil {
			sqlRows.Close()
			return nil, fmt.Errorf("read rows for copy: %w", err)
		}
		rows = append(rows, r)
	}
	if err := sqlRows.Err(); err != nil {
		return nil, fmt.Errorf("read rows for copy: %w", err)
	}
	sqlRows.Close()
	// Rows in the order ingest inserted them (time-ordered ids), as a bulk
	// loader would have them.
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.ID, b.ID) })

	table := "bench_copy_" + run
	if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (LIKE notifications INCLUDING ALL)`); err != nil {
		return nil, fmt.Errorf("create %s: %w", table, err)
	}
	defer func() { _, _ = db.ExecContext(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS `+table) }()

	start := time.Now()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	var backend int
	if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	cpuBefore, cpuKnown := proccpu.Of(backend)
	stmt, err := tx.PrepareContext(ctx, `COPY `+table+` (id, user_id, org_id, event_id, type, priority, title, message, data, read_at, created_at) FROM STDIN`)
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	for _, r := range rows {
		var readAt any
		if r.ReadAt != nil {
			readAt = *r.ReadAt
		}
		if _, err := stmt.ExecContext(ctx, r.ID, r.UserID, r.OrgID, r.EventID, r.Type, r.Priority, r.Title, r.Message, r.Data, readAt, r.CreatedAt); err != nil {
			return nil, fmt.Errorf("copy: %w", err)
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	if err := stmt.Close(); err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("copy: commit: %w", err)
	}
	res := &CopyResult{Rows: len(rows), Duration: time.Since(start)}
	if cpuAfter, ok := proccpu.Of(backend); ok && cpuKnown {
		res.PostgresCPU = cpuAfter - cpuBefore
	}
	return res, nil
}
