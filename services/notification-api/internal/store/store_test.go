package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/notification-api/internal/store"
	"github.com/xpeditis/notify/services/notification-api/migrations"
)

func newStore(t *testing.T) (*store.Store, func(string) int) {
	t.Helper()
	db := testkit.Postgres(t)
	if err := postgres.Migrate(context.Background(), db, "notification-api", migrations.FS); err != nil {
		t.Fatal(err)
	}
	count := func(q string) int {
		t.Helper()
		var n int
		if err := db.Get(&n, q); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return store.New(db), count
}

func row(event, user string, created time.Time) store.Row {
	return store.Row{
		ID: uuid.Must(uuid.NewV7()), UserID: user, OrgID: "org-1", EventID: event, Type: "BOOKING_CREATED",
		Priority: "MEDIUM", Title: "t", Message: "m", Data: json.RawMessage(`{"k":"v"}`), CreatedAt: created,
	}
}

// A batch is stored whole when all its rows are new (the COPY), and row by
// row when some exist already: those are read back, the others inserted.
func TestInsertBatchStoresNewRowsAndReturnsExistingOnes(t *testing.T) {
	st, count := newStore(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 29, 12, 0, 0, 123456000, time.UTC)
	first := []store.Row{row("e1", "u1", at), row("e1", "u2", at), row("e2", "u1", at)}
	got, err := st.InsertBatch(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	assertIDs(t, got, first)

	// A redelivery of e1 with new ids, in a batch with a new event.
	again := []store.Row{row("e1", "u1", at), row("e3", "u1", at), row("e1", "u2", at)}
	got, err = st.InsertBatch(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	assertIDs(t, got, []store.Row{first[0], again[1], first[1]})
	if n := count(`SELECT count(*) FROM notifications`); n != 4 {
		t.Fatalf("%d rows, want 4", n)
	}

	// The same (event, user) twice in one new batch: stored once.
	twice := []store.Row{row("e4", "u1", at), row("e4", "u1", at)}
	got, err = st.InsertBatch(ctx, twice)
	if err != nil {
		t.Fatal(err)
	}
	assertIDs(t, got, []store.Row{twice[0], twice[0]})
	if n := count(`SELECT count(*) FROM notifications WHERE event_id = 'e4'`); n != 1 {
		t.Fatalf("%d rows of e4, want 1", n)
	}
}

// The COPY's text format escapes what it must: every column reads back as
// written.
func TestInsertBatchKeepsEveryCharacter(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	r := row("ev\t1\\N", "user\n1", time.Date(2026, 11, 29, 12, 0, 0, 999999000, time.FixedZone("x", 3600)))
	r.OrgID = `org\.1`
	r.Title = "tab\there, newline\nthere, backslash \\ and \\N, carriage\rreturn, 日本語 🚀"
	r.Message = "\\."
	r.Data = json.RawMessage(`{"s":"a\tb\\c\n","n":[1,2.5,null],"u":"\u00e9"}`)
	empty := row("ev2", "u", r.CreatedAt)
	empty.Data = nil
	if _, err := st.InsertBatch(ctx, []store.Row{r, empty}); err != nil {
		t.Fatal(err)
	}
	rows, _, _, err := st.List(ctx, "user\n1", store.Filter{}, store.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	have := rows[0]
	var wantData, haveData any
	_ = json.Unmarshal(r.Data, &wantData)
	_ = json.Unmarshal(have.Data, &haveData)
	if have.ID != r.ID || have.EventID != r.EventID || have.OrgID != r.OrgID || have.Title != r.Title ||
		have.Message != r.Message || !have.CreatedAt.Equal(r.CreatedAt) || !jsonEqual(wantData, haveData) {
		t.Fatalf("stored %+v (data %s), want %+v (data %s)", have, have.Data, r, r.Data)
	}
	rows, _, _, err = st.List(ctx, "u", store.Filter{}, store.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || string(rows[0].Data) != "{}" {
		t.Fatalf("a row without data: %+v", rows)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func assertIDs(t *testing.T, got, want []store.Row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].EventID != want[i].EventID || got[i].UserID != want[i].UserID {
			t.Fatalf("row %d: %s (%s, %s), want %s (%s, %s)", i, got[i].ID, got[i].EventID, got[i].UserID,
				want[i].ID, want[i].EventID, want[i].UserID)
		}
	}
}
