package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/problem"
	"github.com/xpeditis/notify/services/notification-api/internal/store"
)

// Page sizes of the list.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	maxPage      = 10_000
)

var (
	filterParams = []string{"read", "type", "priority", "since", "until"}
	// eventId selects what one event produced (a script finds the
	// notification of the event it published); it is not a read-all filter,
	// whose filters the user's other tabs apply to what they show.
	listParams = append([]string{"limit", "cursor", "page", "eventId"}, filterParams...)
	// notificationTypes are the accepted values of "type" (the route table
	// is fixed: built once rather than on every request).
	notificationTypes = contract.NotificationTypes()
)

type filterQuery struct {
	filter store.Filter
	echo   json.RawMessage // the filters as given, for the read-all sync message
}

type listQuery struct {
	filterQuery
	page store.Page
}

// queryValues parses the raw query, refusing a malformed one rather than
// silently dropping the parts that do not parse.
func queryValues(raw string) (url.Values, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, problem.BadRequest("query string is malformed: %v", err)
	}
	return v, nil
}

func parseListQuery(raw string) (listQuery, error) {
	v, err := queryValues(raw)
	if err != nil {
		return listQuery{}, err
	}
	if err := onlyKnown(v, listParams); err != nil {
		return listQuery{}, err
	}
	fq, err := parseFilters(v)
	if err != nil {
		return listQuery{}, err
	}
	q := listQuery{filterQuery: fq, page: store.Page{Limit: DefaultLimit}}
	if s := v.Get("eventId"); s != "" {
		if len(s) > contract.MaxIDLength {
			return q, problem.BadRequest("eventId is longer than %d characters", contract.MaxIDLength)
		}
		q.filter.EventID = s
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, problem.BadRequest("limit must be an integer from 1 to %d, not %q", MaxLimit, truncate(s, 32))
		}
		q.page.Limit = n
	}
	cursor, page := v.Get("cursor"), v.Get("page")
	if cursor != "" && page != "" {
		return q, problem.BadRequest("use cursor or page, not both")
	}
	if cursor != "" {
		c, err := decodeCursor(cursor)
		if err != nil {
			return q, problem.BadRequest("cursor is not valid: pass back the nextCursor of a previous page")
		}
		q.page.After = &c
	}
	if page != "" {
		n, err := strconv.Atoi(page)
		if err != nil || n < 1 || n > maxPage {
			return q, problem.BadRequest("page must be an integer from 1 to %d, not %q", maxPage, truncate(page, 32))
		}
		q.page.Offset = (n - 1) * q.page.Limit
	}
	return q, nil
}

func parseFilterQuery(raw string) (filterQuery, error) {
	v, err := queryValues(raw)
	if err != nil {
		return filterQuery{}, err
	}
	if err := onlyKnown(v, filterParams); err != nil {
		return filterQuery{}, err
	}
	return parseFilters(v)
}

func onlyKnown(v url.Values, known []string) error {
	var unknown []string
	for k := range v {
		if !slices.Contains(known, k) {
			unknown = append(unknown, truncate(k, 32))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return problem.BadRequest("unknown query parameter %s; accepted: %s", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return nil
}

// parseFilters reads read, type (repeatable or comma-separated), priority
// (likewise), since and until (RFC 3339).
func parseFilters(v url.Values) (filterQuery, error) {
	var f store.Filter
	echo := map[string]any{}
	if s := v.Get("read"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return filterQuery{}, problem.BadRequest("read must be true or false, not %q", truncate(s, 32))
		}
		f.Read = &b
		echo["read"] = b
	}
	for _, t := range splitValues(v["type"]) {
		t = strings.ToUpper(t)
		if !slices.Contains(notificationTypes, t) {
			return filterQuery{}, problem.BadRequest("unknown type %q; accepted: %s", truncate(t, 64), strings.Join(notificationTypes, ", "))
		}
		f.Types = append(f.Types, t)
	}
	for _, p := range splitValues(v["priority"]) {
		pr, ok := contract.ParsePriority(p)
		if !ok {
			return filterQuery{}, problem.BadRequest("unknown priority %q; accepted: LOW, MEDIUM, HIGH, URGENT", truncate(p, 32))
		}
		f.Priorities = append(f.Priorities, string(pr))
	}
	if len(f.Types) > 0 {
		echo["type"] = f.Types
	}
	if len(f.Priorities) > 0 {
		echo["priority"] = f.Priorities
	}
	for _, name := range []string{"since", "until"} {
		s := v.Get(name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return filterQuery{}, problem.BadRequest("%s must be an RFC 3339 time such as 2026-11-27T10:00:00Z, not %q", name, truncate(s, 64))
		}
		if name == "since" {
			f.Since = &t
		} else {
			f.Until = &t
		}
		echo[name] = t.UTC()
	}
	if f.Since != nil && f.Until != nil && !f.Since.Before(*f.Until) {
		return filterQuery{}, problem.BadRequest("since must be before until")
	}
	q := filterQuery{filter: f}
	if len(echo) > 0 {
		q.echo, _ = json.Marshal(echo)
	}
	return q, nil
}

func splitValues(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// A cursor is the position of the last row of a page, opaque to clients:
// base64url("<created_at in Unix microseconds, base 36>.<notification id>").
func encodeCursor(c store.Cursor) string {
	raw := strconv.FormatInt(c.CreatedAt.UnixMicro(), 36) + "." + c.ID.String()
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// Bounds of a cursor's time. Rows are stamped with the time JetStream
// stored their event, so no cursor the API hands out lies outside them; a
// time beyond PostgreSQL's range would otherwise fail the query (a 500).
var (
	minCursorTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxCursorTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// maxCursorLength is the longest cursor encodeCursor makes, with room.
const maxCursorLength = 80

// errBadCursor is every reason a cursor is refused; which one does not
// matter to a client, which should pass back a nextCursor unchanged.
var errBadCursor = errors.New("not a cursor this API returned")

// decodeCursor accepts exactly what encodeCursor makes: anything else (an
// altered time, another shape, a time outside the bounds) is refused.
func decodeCursor(s string) (store.Cursor, error) {
	if len(s) > maxCursorLength {
		return store.Cursor{}, errBadCursor
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return store.Cursor{}, errBadCursor
	}
	ts, id, ok := strings.Cut(string(raw), ".")
	if !ok {
		return store.Cursor{}, errBadCursor
	}
	micros, err := strconv.ParseInt(ts, 36, 64)
	if err != nil {
		return store.Cursor{}, errBadCursor
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return store.Cursor{}, errBadCursor
	}
	c := store.Cursor{CreatedAt: time.UnixMicro(micros).UTC(), ID: u}
	if c.CreatedAt.Before(minCursorTime) || !c.CreatedAt.Before(maxCursorTime) {
		return store.Cursor{}, errBadCursor
	}
	// Only the canonical spelling: no sign or leading zeros in the time, a
	// lower-case hyphenated id.
	if encodeCursor(c) != s {
		return store.Cursor{}, errBadCursor
	}
	return c, nil
}
