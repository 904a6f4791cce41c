package api

import (
	"bytes"
	"strconv"
	"sync"

	"github.com/xpeditis/notify/services/notification-api/internal/store"
)

// The list's response is written by hand (each row by store.Row.AppendJSON):
// encoding/json spent more on reflection, the validation of each row's data
// and the time formatting than the rest of the route (issue 13's profile of
// the list). The bytes are those encoding/json's Encoder writes for the same
// page (contract.Notification, HTML-safe escaping, compacted data, a final
// newline), which TestListBodyIsEncodingJSONs pins.

// encoders holds the buffers of the list's responses: a page is a few
// kilobytes, written in one piece with its length.
var encoders = sync.Pool{New: func() any { return new(listEncoder) }}

type listEncoder struct {
	out bytes.Buffer
}

// maxPooled keeps an unusually large response's buffer out of the pool.
const maxPooled = 1 << 20

func (e *listEncoder) release() {
	if e.out.Cap() > maxPooled {
		return
	}
	e.out.Reset()
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
		if err := rows[i].AppendJSON(b); err != nil {
			return err
		}
	}
	b.WriteString(`],"nextCursor":`)
	if next == nil {
		b.WriteString("null")
	} else {
		store.AppendJSONString(b, *next)
	}
	b.WriteString(`,"unreadCount":`)
	b.Write(strconv.AppendInt(b.AvailableBuffer(), unread, 10))
	b.WriteString("}\n")
	return nil
}
