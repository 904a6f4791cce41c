package napibench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/xpeditis/notify/pkg/contract"
)

// Seed describes the notifications the list benchmark reads: Rows rows
// spread evenly over Users users, one every few seconds over History, the
// newest tenth unread.
type Seed struct {
	Users   int
	Rows    int
	History time.Duration
	Streams int // parallel COPY streams
}

// seedMarker names the seed in the bench_seed table; a seed is reused when
// its marker says it was completed with the same shape.
const seedMarker = "list"

// SeedUser is the id of the i-th seeded user.
func SeedUser(i int) string { return fmt.Sprintf("seed-user-%05d", i) }

// EnsureSeed makes sure the seed is in the table, loading it with COPY when
// it is missing or has another shape, and reports whether it was reused.
func EnsureSeed(ctx context.Context, db *sqlx.DB, s Seed, progress io.Writer) (reused bool, err error) {
	if s.Users < 1 || s.Rows < s.Users || s.Streams < 1 {
		return false, errors.New("seed: need at least one row per user and one stream")
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS bench_seed (
		name      text PRIMARY KEY,
		users     integer NOT NULL,
		rows      bigint NOT NULL,
		seeded_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return false, fmt.Errorf("seed marker: %w", err)
	}
	var users, rows int
	err = db.QueryRowContext(ctx, `SELECT users, rows FROM bench_seed WHERE name = $1`, seedMarker).Scan(&users, &rows)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, fmt.Errorf("seed marker: %w", err)
	case users == s.Users && rows == s.Rows:
		// The marker is written after the rows commit; check one user anyway
		// in case someone deleted rows since.
		var n int
		if err := db.GetContext(ctx, &n, `SELECT count(*) FROM notifications WHERE user_id = $1`, SeedUser(0)); err != nil {
			return false, fmt.Errorf("seed check: %w", err)
		}
		if n == s.Rows/s.Users {
			return true, nil
		}
	}
	logf(progress, "seeding %d notifications over %d users with COPY (%d streams)", s.Rows, s.Users, s.Streams)
	start := time.Now()
	if _, err := db.ExecContext(ctx, `DELETE FROM bench_seed WHERE name = $1`, seedMarker); err != nil {
		return false, fmt.Errorf("seed marker: %w", err)
	}
	// Remove an older or partial seed: only seeded users' rows, through the
	// user index.
	res, err := db.ExecContext(ctx, `DELETE FROM notifications WHERE user_id >= 'seed-user-' AND user_id < 'seed-user.' AND user_id LIKE 'seed-user-%'`)
	if err != nil {
		return false, fmt.Errorf("remove old seed: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		logf(progress, "removed %d rows of an earlier seed", n)
	}
	if err := s.copyRows(ctx, db, time.Now().UTC().Truncate(time.Second)); err != nil {
		return false, err
	}
	logf(progress, "copied in %s; VACUUM ANALYZE so that plans and the visibility map are those of a settled table", time.Since(start).Round(time.Second))
	if _, err := db.ExecContext(ctx, `VACUUM ANALYZE notifications`); err != nil {
		return false, fmt.Errorf("vacuum: %w", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO bench_seed (name, users, rows) VALUES ($1, $2, $3)`, seedMarker, s.Users, s.Rows); err != nil {
		return false, fmt.Errorf("seed marker: %w", err)
	}
	logf(progress, "seeded in %s", time.Since(start).Round(time.Second))
	return false, nil
}

// copyRows loads the rows in time order, split into contiguous ranges, one
// COPY per stream.
func (s Seed) copyRows(ctx context.Context, db *sqlx.DB, end time.Time) error {
	step := s.History / time.Duration(s.Rows)
	first := end.Add(-time.Duration(s.Rows) * step)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	per := (s.Rows + s.Streams - 1) / s.Streams
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for lo := 0; lo < s.Rows; lo += per {
		hi := min(lo+per, s.Rows)
		wg.Go(func() {
			if err := s.copyRange(ctx, db, first, step, lo, hi); err != nil {
				cancel() // one failed stream fails the seed: stop the others
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s Seed) copyRange(ctx context.Context, db *sqlx.DB, first time.Time, step time.Duration, lo, hi int) error {
	var routes []contract.Route
	for _, t := range contract.EventTypes() {
		if r, _ := contract.RouteOf(t); r.InApp != "" {
			routes = append(routes, r)
		}
	}
	unreadFrom := s.Rows - s.Rows/10
	rng := rand.New(rand.NewPCG(uint64(lo), uint64(hi)))
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, `COPY notifications (id, user_id, org_id, event_id, type, priority, title, message, data, read_at, created_at) FROM STDIN`)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	for j := lo; j < hi; j++ {
		created := first.Add(time.Duration(j) * step)
		user := j % s.Users
		r := routes[j%len(routes)]
		var readAt any
		if j < unreadFrom {
			readAt = created.Add(time.Hour)
		}
		_, err := stmt.ExecContext(ctx, uuidV7At(created, rng).String(), SeedUser(user), "seed-org-"+strconv.Itoa(user%100),
			fmt.Sprintf("seed-%09d", j), r.InApp, string(r.Priority), r.Title, r.Message,
			`{"bookingId":"BK-`+strconv.Itoa(j)+`"}`, readAt, created)
		if err != nil {
			return fmt.Errorf("seed: copy: %w", err)
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("seed: copy: %w", err)
	}
	if err := stmt.Close(); err != nil {
		return fmt.Errorf("seed: copy: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("seed: commit: %w", err)
	}
	return nil
}

// uuidV7At is a UUIDv7 for time t (RFC 9562: 48-bit Unix milliseconds,
// version, variant, random bits), so seeded ids sort with their creation
// time like the ids ingest generates.
func uuidV7At(t time.Time, rng *rand.Rand) uuid.UUID {
	var u uuid.UUID
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	a, b := rng.Uint64(), rng.Uint64()
	u[6] = 0x70 | byte(a>>8)&0x0f
	u[7] = byte(a)
	u[8] = 0x80 | byte(b>>56)&0x3f
	for i := 9; i < 16; i++ {
		u[i] = byte(b >> (8 * (15 - i)))
	}
	return u
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
