package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/xpeditis/notify/services/notification-api/internal/store"
)

// The list's response is written by hand: encoding/json spent more on
// reflection, the validation of each row's data and the time formatting than
// the rest of the route (issue 13's profile of the list). The bytes are those
// encoding/json's Encoder writes for the same page (contract.Notification,
// HTML-safe escaping, compacted data, a final newline), which
// TestListBodyIsEncodingJSONs pins.

// encoders holds the buffers of the list's responses: a page is a few
// kilobytes, written in one piece with its length.
var encoders = sync.Pool{New: func() any { return new(listEncoder) }}

type listEncoder struct {
	out, scratch bytes.Buffer
}

// maxPooled keeps an unusually large response's buffer out of the pool.
const maxPooled = 1 << 20

func (e *listEncoder) release() {
	if e.out.Cap() > maxPooled || e.scratch.Cap() > maxPooled {
		return
	}
	e.out.Reset()
	e.scratch.Reset()
	encoders.Put(e)
}

// encodeList writes {"data":[…],"nextCursor":…,"unreadCount":…} and a
// newline to e.out.
func (e *listEncoder) encodeList(rows []store.Row, next *string, unread int64) error {
	b := &e.out
	b.WriteString(`{"data":[`)
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := e.encodeRow(&rows[i]); err != nil {
			return err
		}
	}
	b.WriteString(`],"nextCursor":`)
	if next == nil {
		b.WriteString("null")
	} else {
		appendString(b, *next)
	}
	b.WriteString(`,"unreadCount":`)
	b.Write(strconv.AppendInt(b.AvailableBuffer(), unread, 10))
	b.WriteString("}\n")
	return nil
}

// encodeRow writes the contract.Notification of r (store.Row.JSON).
func (e *listEncoder) encodeRow(r *store.Row) error {
	b := &e.out
	b.WriteString(`{"id":"`)
	var id [36]byte
	encodeUUID(id[:], r.ID)
	b.Write(id[:])
	b.WriteString(`","type":`)
	appendString(b, r.Type)
	b.WriteString(`,"priority":`)
	appendString(b, r.Priority)
	b.WriteString(`,"title":`)
	appendString(b, r.Title)
	b.WriteString(`,"message":`)
	appendString(b, r.Message)
	b.WriteString(`,"data":`)
	if len(r.Data) == 0 {
		b.WriteString("{}")
	} else {
		// What encoding/json does with a json.RawMessage: compact it (which
		// validates it), escaping <, > and & and U+2028/U+2029.
		e.scratch.Reset()
		if err := json.Compact(&e.scratch, r.Data); err != nil {
			return err
		}
		json.HTMLEscape(b, e.scratch.Bytes())
	}
	b.WriteString(`,"eventId":`)
	appendString(b, r.EventID)
	if r.ReadAt.Valid {
		b.WriteString(`,"read":true,"readAt":`)
		if err := appendTime(b, r.ReadAt.Time); err != nil {
			return err
		}
	} else {
		b.WriteString(`,"read":false,"readAt":null`)
	}
	b.WriteString(`,"createdAt":`)
	if err := appendTime(b, r.CreatedAt); err != nil {
		return err
	}
	b.WriteByte('}')
	return nil
}

// appendTime writes t in UTC as time.Time's MarshalJSON does, refusing
// the years it refuses.
func appendTime(b *bytes.Buffer, t time.Time) error {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		_, err := t.MarshalJSON() // its error, word for word
		return err
	}
	buf := b.AvailableBuffer()
	buf = append(buf, '"')
	buf = t.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, '"')
	b.Write(buf)
	return nil
}

func encodeUUID(dst []byte, u [16]byte) {
	const hex = "0123456789abcdef"
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j], dst[j+1] = hex[c>>4], hex[c&0x0f]
		j += 2
	}
}

// appendString writes s as a JSON string exactly as encoding/json does
// (with its default HTML-safe escaping): ", \ and control characters
// escaped, <, > and & as \u003c, \u003e and \u0026, U+2028 and U+2029
// escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b.WriteString(s[start:i])
			switch c {
			case '\\', '"':
				b.WriteByte('\\')
				b.WriteByte(c)
			case '\b':
				b.WriteString(`\b`)
			case '\f':
				b.WriteString(`\f`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(s[start:i])
			b.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b.WriteString(s[start:i])
			b.WriteString(`\u202`)
			b.WriteByte(hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}
