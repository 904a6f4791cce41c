package postgres_test

import (
	"context"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/testkit"
)

func TestMigrateAppliesEachFileOnceAcrossConcurrentStarts(t *testing.T) {
	db := testkit.Postgres(t)
	fs := fstest.MapFS{
		"001_a.sql": {Data: []byte(`CREATE TABLE a (id int)`)},
		"002_b.sql": {Data: []byte(`INSERT INTO a VALUES (1)`)},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- postgres.Migrate(context.Background(), db, "svc", fs) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM a`); err != nil || n != 1 {
		t.Fatalf("rows %d, err %v: the data migration ran more than once", n, err)
	}
	// Another service's versions are its own.
	if err := postgres.Migrate(context.Background(), db, "other", fstest.MapFS{"001_x.sql": {Data: []byte(`CREATE TABLE x (id int)`)}}); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(context.Background(), db, "bad", fstest.MapFS{"one.sql": {Data: []byte(``)}}); err == nil {
		t.Fatal("a file without a version number was accepted")
	}
}
