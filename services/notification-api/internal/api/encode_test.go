package api

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/services/notification-api/internal/store"
)

// reference is what the list answered with encoding/json before it was
// written by hand: Echo's c.JSON is an Encoder's Encode of this.
func reference(t *testing.T, rows []store.Row, next *string, unread int64) []byte {
	t.Helper()
	resp := struct {
		Data        []contract.Notification `json:"data"`
		NextCursor  *string                 `json:"nextCursor"`
		UnreadCount int64                   `json:"unreadCount"`
	}{Data: make([]contract.Notification, len(rows)), NextCursor: next, UnreadCount: unread}
	for i, r := range rows {
		resp.Data[i] = r.JSON()
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(resp); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func handWritten(t *testing.T, rows []store.Row, next *string, unread int64) []byte {
	t.Helper()
	e := encoders.Get().(*listEncoder)
	defer e.release()
	if err := e.encodeList(rows, next, unread); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(e.out.Bytes())
}

// Strings that exercise every escaping rule of encoding/json.
var awkward = []string{
	"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>", "tab\tnew\nline\rcr\bbs\fff",
	"\x00\x01\x1f\x7f", "é ü ß 中文 🚢", "\u2028 and \u2029", "bad \xff utf-8 \xc3", "\xed\xa0\x80 surrogate",
	"end in half \xe2\x82",
}

func TestListBodyIsEncodingJSONs(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	created := time.Date(2026, 11, 29, 10, 0, 0, 123456000, paris)
	var rows []store.Row
	for i, s := range awkward {
		r := store.Row{
			ID: uuid.New(), UserID: "u", OrgID: "o", EventID: s, Type: s, Priority: "HIGH",
			Title: s, Message: s + s, CreatedAt: created.Add(time.Duration(i) * time.Second),
		}
		switch i % 4 {
		case 0:
			r.Data = nil // stored without data: {}
		case 1:
			r.Data = json.RawMessage(`{"a": 1, "b": [1, 2, {"c": "<&>"}], "d": "\u2028 x"}`) // jsonb's text form
		case 2:
			r.Data = json.RawMessage(`{"s": "quote \" and \\ and \u003c", "n": null, "t": true, "f": -1.5e3}`)
		case 3:
			r.Data = json.RawMessage("{\n  \"nested\" : { \"k\" : [ ] } ,\"u\":\"🚢\"}")
		}
		if i%2 == 1 {
			r.ReadAt = sql.NullTime{Valid: true, Time: created.Add(time.Hour)}
		}
		if i == 3 {
			r.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) // no fraction
		}
		rows = append(rows, r)
	}
	cursor := encodeCursor(store.Cursor{CreatedAt: created, ID: rows[0].ID})
	for _, tc := range []struct {
		name   string
		rows   []store.Row
		next   *string
		unread int64
	}{
		{"empty", []store.Row{}, nil, 0},
		{"one", rows[:1], nil, 1},
		{"awkward strings", rows, &cursor, 1234567},
		{"awkward cursor", rows[1:3], &awkward[5], -1},
	} {
		want := reference(t, tc.rows, tc.next, tc.unread)
		got := handWritten(t, tc.rows, tc.next, tc.unread)
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, want)
		}
	}
}
