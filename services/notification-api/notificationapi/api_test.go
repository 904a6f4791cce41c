package notificationapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/notification-api/internal/store"
)

type list struct {
	Data        []contract.Notification `json:"data"`
	NextCursor  *string                 `json:"nextCursor"`
	UnreadCount int64                   `json:"unreadCount"`
}

// seed stores n notifications for user directly, one second apart, newest
// last, cycling through types and priorities; it returns them newest first.
func (h *harness) seed(user string, n int) []store.Row {
	h.t.Helper()
	types := []string{"BOOKING_CREATED", "PAYMENT_FAILED", "DOCUMENT_UPLOADED"}
	prios := []string{"MEDIUM", "URGENT", "LOW"}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	rows := make([]store.Row, n)
	for i := range rows {
		rows[i] = store.Row{
			ID: uuid.Must(uuid.NewV7()), UserID: user, OrgID: "org-1", EventID: fmt.Sprintf("seed-%s-%d", user, i),
			Type: types[i%3], Priority: prios[i%3], Title: "t", Message: "m", Data: json.RawMessage(`{"i":` + fmt.Sprint(i) + `}`),
			CreatedAt: base.Add(time.Duration(i) * time.Second),
		}
	}
	if _, err := store.New(h.db).InsertBatch(context.Background(), rows); err != nil {
		h.t.Fatal(err)
	}
	out := make([]store.Row, n)
	for i := range rows {
		out[n-1-i] = rows[i]
	}
	return out
}

func (h *harness) list(tok, query string) list {
	h.t.Helper()
	r := h.do("GET", "/api/v1/notifications"+query, tok, "")
	if r.Status != http.StatusOK {
		h.t.Fatalf("list %s: status %d: %s", query, r.Status, r.Body)
	}
	var l list
	r.decode(h.t, &l)
	return l
}

func (h *harness) unread(tok string) int64 {
	h.t.Helper()
	r := h.do("GET", "/api/v1/notifications/unread-count", tok, "")
	if r.Status != http.StatusOK {
		h.t.Fatalf("unread-count: status %d: %s", r.Status, r.Body)
	}
	var v struct{ UnreadCount int64 }
	r.decode(h.t, &v)
	return v.UnreadCount
}

func TestEveryRouteRefusesBadTokens(t *testing.T) {
	h := start(t)
	expired, _ := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: "u", TTL: -time.Minute})
	wrongKey, _ := auth.Mint("another-secret-another-secret-another-secret", auth.MintOptions{UserID: "u", TTL: time.Hour})
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u"}).SignedString([]byte(testkit.JWTSecret))
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(testkit.JWTSecret))
	id := uuid.NewString()
	routes := [][2]string{
		{"GET", "/api/v1/notifications"},
		{"GET", "/api/v1/notifications/unread-count"},
		{"PATCH", "/api/v1/notifications/read-all"},
		{"PATCH", "/api/v1/notifications/" + id + "/read"},
		{"DELETE", "/api/v1/notifications/" + id},
	}
	tokens := map[string]string{
		"missing": "", "expired": expired, "wrong signature": wrongKey, "alg none": none,
		"no exp": noExp, "alg HS512": hs512, "garbage": "not.a.jwt",
	}
	for _, rt := range routes {
		for name, tok := range tokens {
			r := h.do(rt[0], rt[1], tok, "")
			if r.Status != http.StatusUnauthorized || !strings.HasPrefix(r.ContentType, "application/problem+json") {
				t.Errorf("%s %s with %s token: status %d %s, want 401 problem+json", rt[0], rt[1], name, r.Status, r.ContentType)
			}
		}
	}
	r := h.do("GET", "/api/v1/notifications", expired, "")
	var p struct{ Detail string }
	r.decode(t, &p)
	if p.Detail != "token is expired" {
		t.Errorf("expired token detail %q", p.Detail)
	}
}

func TestAnotherUsersNotificationIsNotFound(t *testing.T) {
	h := start(t)
	rows := h.seed("owner", 1)
	id := rows[0].ID.String()
	intruder := token(t, "intruder")
	for _, rt := range [][2]string{{"PATCH", "/api/v1/notifications/" + id + "/read"}, {"DELETE", "/api/v1/notifications/" + id}} {
		if r := h.do(rt[0], rt[1], intruder, ""); r.Status != http.StatusNotFound {
			t.Errorf("%s by another user: status %d, want 404", rt[0], r.Status)
		}
	}
	if l := h.list(intruder, ""); len(l.Data) != 0 {
		t.Errorf("another user lists %d notifications", len(l.Data))
	}
	if n := h.unread(token(t, "owner")); n != 1 {
		t.Errorf("owner's unread count %d after the intruder's attempts, want 1", n)
	}
	if r := h.do("PATCH", "/api/v1/notifications/"+uuid.NewString()+"/read", intruder, ""); r.Status != http.StatusNotFound {
		t.Errorf("unknown id: status %d, want 404", r.Status)
	}
}

func TestCursorPagingReturnsEveryRowOnceInOrder(t *testing.T) {
	h := start(t)
	want := h.seed("pager", 250)
	h.seed("other", 30)
	tok := token(t, "pager")
	var got []string
	query := "?limit=100"
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("the cursor never ends")
		}
		l := h.list(tok, query)
		for _, n := range l.Data {
			got = append(got, n.ID)
		}
		if l.UnreadCount != 250 {
			t.Fatalf("unreadCount %d, want 250", l.UnreadCount)
		}
		if l.NextCursor == nil {
			break
		}
		query = "?limit=100&cursor=" + url.QueryEscape(*l.NextCursor)
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows through the cursor, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i].ID.String() {
			t.Fatalf("row %d is %s, want %s (newest first, each once)", i, got[i], want[i].ID)
		}
	}
	// Default limit and page numbers.
	if l := h.list(tok, ""); len(l.Data) != 20 || l.Data[0].ID != want[0].ID.String() {
		t.Fatalf("default page: %d rows", len(l.Data))
	}
	if l := h.list(tok, "?page=3&limit=20"); len(l.Data) != 20 || l.Data[0].ID != want[40].ID.String() {
		t.Fatalf("page 3 starts at %v, want row 40", l.Data[0].ID)
	}
	if l := h.list(tok, "?page=13&limit=20"); len(l.Data) != 10 || l.NextCursor != nil {
		t.Fatalf("last page: %d rows, cursor %v", len(l.Data), l.NextCursor)
	}
}

func TestFiltersCombine(t *testing.T) {
	h := start(t)
	rows := h.seed("filter", 30) // newest first; types cycle every 3 by creation index
	tok := token(t, "filter")
	// Mark the 5 newest read.
	for _, r := range rows[:5] {
		if resp := h.do("PATCH", "/api/v1/notifications/"+r.ID.String()+"/read", tok, ""); resp.Status != http.StatusOK {
			t.Fatalf("mark read: %d", resp.Status)
		}
	}
	since := rows[19].CreatedAt.Format(time.RFC3339) // index 10 by creation
	until := rows[4].CreatedAt.Format(time.RFC3339)  // index 25 by creation
	count := func(query string) int {
		t.Helper()
		n := 0
		q := query + "&limit=100"
		for _, d := range h.list(tok, q).Data {
			_ = d
			n++
		}
		return n
	}
	want := func(pred func(i int, r store.Row) bool) int {
		n := 0
		for i, r := range rows {
			if pred(i, r) {
				n++
			}
		}
		return n
	}
	cases := []struct {
		query string
		pred  func(i int, r store.Row) bool
	}{
		{"?read=true", func(i int, _ store.Row) bool { return i < 5 }},
		{"?read=false", func(i int, _ store.Row) bool { return i >= 5 }},
		{"?type=PAYMENT_FAILED", func(_ int, r store.Row) bool { return r.Type == "PAYMENT_FAILED" }},
		{"?type=PAYMENT_FAILED&type=DOCUMENT_UPLOADED", func(_ int, r store.Row) bool { return r.Type != "BOOKING_CREATED" }},
		{"?type=PAYMENT_FAILED,DOCUMENT_UPLOADED&read=false", func(i int, r store.Row) bool { return r.Type != "BOOKING_CREATED" && i >= 5 }},
		{"?priority=urgent&read=false", func(i int, r store.Row) bool { return r.Priority == "URGENT" && i >= 5 }},
		{"?since=" + url.QueryEscape(since) + "&until=" + url.QueryEscape(until), func(i int, _ store.Row) bool { return i > 4 && i <= 19 }},
		{"?since=" + url.QueryEscape(since) + "&type=BOOKING_CREATED&read=false", func(i int, r store.Row) bool { return i <= 19 && i >= 5 && r.Type == "BOOKING_CREATED" }},
		{"?eventId=" + url.QueryEscape(rows[7].EventID), func(i int, _ store.Row) bool { return i == 7 }},
		{"?eventId=" + url.QueryEscape(rows[7].EventID) + "&read=true", func(int, store.Row) bool { return false }},
		{"?eventId=no-such-event", func(int, store.Row) bool { return false }},
	}
	for _, c := range cases {
		if got, w := count(c.query), want(c.pred); got != w {
			t.Errorf("%s: %d rows, want %d", c.query, got, w)
		}
	}
}

func TestBadInputIsAProblemNamingIt(t *testing.T) {
	h := start(t)
	tok := token(t, "bad")
	cases := map[string]string{
		"/api/v1/notifications?limit=0":                                               "limit",
		"/api/v1/notifications?limit=101":                                             "limit",
		"/api/v1/notifications?limit=x":                                               "limit",
		"/api/v1/notifications?read=maybe":                                            "read",
		"/api/v1/notifications?type=NOPE":                                             "unknown type",
		"/api/v1/notifications?priority=HUGE":                                         "unknown priority",
		"/api/v1/notifications?since=yesterday":                                       "since",
		"/api/v1/notifications?cursor=%%%":                                            "malformed",
		"/api/v1/notifications?cursor=bm9wZQ":                                         "cursor",
		"/api/v1/notifications?cursor=abc&page=2":                                     "cursor or page",
		"/api/v1/notifications?colour=red":                                            "unknown query parameter colour",
		"/api/v1/notifications?eventId=" + strings.Repeat("e", 201):                   "eventId is longer",
		"/api/v1/notifications/unread-count?x=1":                                      "", // no parameters: ignored
		"/api/v1/notifications?since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z": "since must be before until",
	}
	for path, want := range cases {
		r := h.do("GET", path, tok, "")
		if want == "" {
			continue
		}
		var p struct {
			Status int
			Detail string
		}
		r.decode(t, &p)
		if r.Status != http.StatusBadRequest || !strings.Contains(p.Detail, want) {
			t.Errorf("%s: %d %q, want 400 naming %q", path, r.Status, p.Detail, want)
		}
	}
	if r := h.do("PATCH", "/api/v1/notifications/not-a-uuid/read", tok, ""); r.Status != http.StatusBadRequest {
		t.Errorf("malformed id: status %d", r.Status)
	}
	if r := h.do("PATCH", "/api/v1/notifications/read-all?type=NOPE", tok, ""); r.Status != http.StatusBadRequest {
		t.Errorf("read-all with a bad filter: status %d", r.Status)
	}
	if r := h.do("PATCH", "/api/v1/notifications/read-all?eventId=e", tok, ""); r.Status != http.StatusBadRequest {
		t.Errorf("read-all by event (a list-only filter): status %d, want 400", r.Status)
	}
	big := `{"x":"` + strings.Repeat("a", 100<<10) + `"}`
	if r := h.do("PATCH", "/api/v1/notifications/read-all", tok, big); r.Status != http.StatusRequestEntityTooLarge || !strings.HasPrefix(r.ContentType, "application/problem+json") {
		t.Errorf("oversized body: status %d %s, want 413 problem+json", r.Status, r.ContentType)
	}
}

func TestReadAllHonoursFiltersAndUnreadCountFollows(t *testing.T) {
	h := start(t)
	rows := h.seed("reader", 9) // 3 of each type
	tok := token(t, "reader")
	if n := h.unread(tok); n != 9 {
		t.Fatalf("unread %d, want 9", n)
	}
	r := h.do("PATCH", "/api/v1/notifications/read-all?type=PAYMENT_FAILED", tok, "")
	var ra struct {
		Updated, UnreadCount int64
	}
	r.decode(t, &ra)
	if r.Status != http.StatusOK || ra.Updated != 3 || ra.UnreadCount != 6 {
		t.Fatalf("read-all by type: %d %+v", r.Status, ra)
	}
	if n := h.unread(tok); n != 6 {
		t.Fatalf("unread %d after read-all of one type, want 6", n)
	}
	// The list carries the count, on a page of rows and on an empty page.
	if l := h.list(tok, "?read=false&type=PAYMENT_FAILED"); len(l.Data) != 0 || l.UnreadCount != 6 {
		t.Fatalf("%d unread PAYMENT_FAILED left, list's unread count %d, want none and 6", len(l.Data), l.UnreadCount)
	}
	if l := h.list(tok, "?limit=2"); len(l.Data) != 2 || l.UnreadCount != 6 {
		t.Fatalf("first page of 2: %d rows, unread count %d, want 2 and 6", len(l.Data), l.UnreadCount)
	}
	// Mark one read twice: idempotent, and the read time stays the first.
	id := rows[0].ID.String()
	first := h.do("PATCH", "/api/v1/notifications/"+id+"/read", tok, "")
	second := h.do("PATCH", "/api/v1/notifications/"+id+"/read", tok, "")
	var n1, n2 contract.Notification
	first.decode(t, &n1)
	second.decode(t, &n2)
	if !n1.Read || n1.ReadAt == nil || n2.ReadAt == nil || !n1.ReadAt.Equal(*n2.ReadAt) {
		t.Fatalf("mark read twice: %+v then %+v", n1, n2)
	}
	wantUnread := int64(5)
	if rows[0].Type == "PAYMENT_FAILED" {
		wantUnread = 6
	}
	if n := h.unread(tok); n != wantUnread {
		t.Fatalf("unread %d, want %d", n, wantUnread)
	}
	if r := h.do("DELETE", "/api/v1/notifications/"+rows[1].ID.String(), tok, ""); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.Status)
	}
	if rows[1].Type != "PAYMENT_FAILED" {
		wantUnread--
	}
	if n := h.unread(tok); n != wantUnread {
		t.Fatalf("unread %d after delete, want %d", n, wantUnread)
	}
	if r := h.do("DELETE", "/api/v1/notifications/"+rows[1].ID.String(), tok, ""); r.Status != http.StatusNotFound {
		t.Fatalf("second delete: %d, want 404", r.Status)
	}
	r = h.do("PATCH", "/api/v1/notifications/read-all", tok, "")
	r.decode(t, &ra)
	if ra.UnreadCount != 0 || h.unread(tok) != 0 {
		t.Fatalf("read-all left %d unread", ra.UnreadCount)
	}
}

func TestReadAndDeletePublishSyncMessages(t *testing.T) {
	h := start(t)
	rows := h.seed("syncer", 3)
	tok := token(t, "syncer")
	h.do("PATCH", "/api/v1/notifications/"+rows[0].ID.String()+"/read", tok, "")
	h.do("DELETE", "/api/v1/notifications/"+rows[1].ID.String(), tok, "")
	h.do("PATCH", "/api/v1/notifications/read-all?priority=LOW", tok, "")
	var msgs []contract.UserMessage
	testkit.Eventually(t, 5*time.Second, "three sync messages", func() bool {
		msgs = h.notifyMessages("syncer")
		return len(msgs) >= 3
	})
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
	var read contract.ReadMessage
	var deleted contract.DeletedMessage
	var all contract.ReadAllMessage
	for i, want := range []struct {
		event string
		into  any
	}{{contract.UserEventRead, &read}, {contract.UserEventDeleted, &deleted}, {contract.UserEventReadAll, &all}} {
		if msgs[i].Event != want.event {
			t.Fatalf("message %d is %q, want %q", i, msgs[i].Event, want.event)
		}
		if err := json.Unmarshal(msgs[i].Data, want.into); err != nil {
			t.Fatal(err)
		}
	}
	if read.ID != rows[0].ID.String() || read.ReadAt.IsZero() || deleted.ID != rows[1].ID.String() {
		t.Fatalf("read %+v deleted %+v", read, deleted)
	}
	if string(all.Filters) != `{"priority":["LOW"]}` {
		t.Fatalf("read-all filters %s", all.Filters)
	}
	if len(h.notifyMessages("someone-else")) != 0 {
		t.Fatal("sync messages leaked to another user")
	}
}

func TestPublishedEventIsListedForItsRecipient(t *testing.T) {
	h := start(t)
	ev := event("PAYMENT_FAILED", "ivy")
	h.publish(ev)
	tok := token(t, "ivy")
	var l list
	testkit.Eventually(t, 5*time.Second, "notification listed", func() bool {
		l = h.list(tok, "")
		return len(l.Data) == 1
	})
	n := l.Data[0]
	if n.EventID != ev.Id || n.Type != "PAYMENT_FAILED" || n.Priority != "URGENT" || n.Read || string(n.Data) != `{"bookingId":"BK-1"}` {
		t.Fatalf("listed %+v", n)
	}
	if l.UnreadCount != 1 {
		t.Fatalf("unreadCount %d", l.UnreadCount)
	}
	msgs := h.notifyMessages("ivy")
	if len(msgs) != 1 || msgs[0].Event != contract.UserEventNotification {
		t.Fatalf("NOTIFY messages %+v", msgs)
	}
	var pushed contract.Notification
	if err := json.Unmarshal(msgs[0].Data, &pushed); err != nil {
		t.Fatal(err)
	}
	if pushed.ID != n.ID || !pushed.CreatedAt.Equal(n.CreatedAt) {
		t.Fatalf("pushed %+v, listed %+v", pushed, n)
	}
}
