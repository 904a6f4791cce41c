package store

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// AppendJSON appends to b the bytes json.Marshal(r.JSON()) produces (the
// API's form of a notification, with encoding/json's HTML-safe escaping and
// the data compacted), without its reflection: the list writes its pages
// with it and ingest its NOTIFY messages. TestListBodyIsEncodingJSONs (api)
// and TestNotificationMessageIsTheContractEnvelope (ingest) pin the bytes.
func (r *Row) AppendJSON(b *bytes.Buffer) error {
	b.WriteString(`{"id":"`)
	var id [36]byte
	encodeUUID(id[:], r.ID)
	b.Write(id[:])
	b.WriteString(`","type":`)
	AppendJSONString(b, r.Type)
	b.WriteString(`,"priority":`)
	AppendJSONString(b, r.Priority)
	b.WriteString(`,"title":`)
	AppendJSONString(b, r.Title)
	b.WriteString(`,"message":`)
	AppendJSONString(b, r.Message)
	b.WriteString(`,"data":`)
	if err := appendData(b, r.Data); err != nil {
		return err
	}
	b.WriteString(`,"eventId":`)
	AppendJSONString(b, r.EventID)
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

// appendData writes data as encoding/json writes a json.RawMessage:
// compacted (which validates it), with <, >, & and U+2028/U+2029 escaped;
// {} when empty.
func appendData(b *bytes.Buffer, data []byte) error {
	if len(data) == 0 {
		b.WriteString("{}")
		return nil
	}
	if !bytes.ContainsAny(data, "<>&") && !bytes.Contains(data, lineSeparator) && !bytes.Contains(data, paragraphSeparator) {
		return json.Compact(b, data) // nothing to escape: one pass
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return err
	}
	json.HTMLEscape(b, compact.Bytes())
	return nil
}

var lineSeparator, paragraphSeparator = []byte("\u2028"), []byte("\u2029")

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

// AppendJSONString writes s as a JSON string exactly as encoding/json does
// (with its default HTML-safe escaping): ", \ and control characters
// escaped, <, > and & as \u003c, \u003e and \u0026, U+2028 and U+2029
// escaped, invalid UTF-8 replaced by U+FFFD.
func AppendJSONString(b *bytes.Buffer, s string) {
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
