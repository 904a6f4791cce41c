package contract

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Received is an event as the consumers use it: its fields, and its data as
// JSON, which they copy into notification rows and webhook bodies as it is.
type Received struct {
	*Event                 // every field but Data, which is nil
	Data   json.RawMessage // the event's data object as JSON; "{}" when it has none
}

// DecodeReceived decodes and validates an event exactly as Decode does, and
// returns its data as JSON instead of a google.protobuf.Struct.
//
// Consumers decode every event, and protojson's reflection was the largest
// single cost of ingest (BENCHMARKS.md, "Where the CPU goes"): building the
// Struct of the data only to encode it back to JSON doubled it. So events
// in the plain form producers write (no escape sequences, known field names
// each once, canonical numbers, RFC 3339 times) take a fast path on
// fastjson's parser; anything else, including every invalid event, goes
// through protojson, so errors and edge cases are protojson's own.
// FuzzDecodeReceived checks that both paths give the same result for every
// input.
func DecodeReceived(data []byte) (Received, error) {
	if len(data) > MaxEventBytes {
		return Received{}, invalidKind("too_large", "event is %d bytes, over the limit of %d", len(data), MaxEventBytes)
	}
	r, ok := decodePlain(data)
	if !ok {
		ev, err := Decode(data)
		if err != nil {
			return Received{}, err
		}
		r = Received{Event: ev, Data: json.RawMessage("{}")}
		if ev.GetData() != nil {
			b, err := protojson.Marshal(ev.GetData())
			if err != nil {
				return Received{}, invalidKind("decode", "cannot encode data: %v", err)
			}
			r.Data = b
		}
		ev.Data = nil
		return r, nil
	}
	if err := Validate(r.Event); err != nil {
		return Received{}, err
	}
	return r, nil
}

var plainParsers fastjson.ParserPool

// decodePlain decodes the plain form of an event, or reports false when
// data is anything else (which protojson then decodes or refuses). It never
// accepts what protojson would refuse or read differently: every input it is
// unsure about goes to protojson.
func decodePlain(data []byte) (Received, bool) {
	// No escapes anywhere: every string then means its bytes. Valid UTF-8
	// and strict JSON (fastjson's parser alone is lenient), as protojson wants.
	if bytes.IndexByte(data, '\\') >= 0 || !utf8.Valid(data) || fastjson.ValidateBytes(data) != nil {
		return Received{}, false
	}
	p := plainParsers.Get()
	defer plainParsers.Put(p)
	v, err := p.ParseBytes(data)
	if err != nil {
		return Received{}, false
	}
	obj, err := v.Object()
	if err != nil {
		return Received{}, false
	}
	ev := &Event{}
	r := Received{Event: ev, Data: json.RawMessage("{}")}
	var seen uint16
	ok := true
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if !ok {
			return
		}
		field := plainField(key)
		if field == 0 || seen&(1<<field) != 0 {
			ok = false // unknown (or proto-named) or repeated: protojson decides
			return
		}
		seen |= 1 << field
		switch field {
		case fieldRecipients:
			items, err := v.Array()
			if err != nil {
				ok = false
				return
			}
			ev.Recipients = make([]string, 0, len(items))
			for _, it := range items {
				s, isString := plainString(it)
				if !isString {
					ok = false
					return
				}
				ev.Recipients = append(ev.Recipients, s)
			}
		case fieldData:
			if v.Type() != fastjson.TypeObject || !plainValue(v) {
				ok = false
				return
			}
			r.Data = v.MarshalTo(nil)
		case fieldOccurredAt:
			s, isString := plainString(v)
			if !isString {
				ok = false
				return
			}
			ev.OccurredAt, ok = plainTimestamp(s)
		default:
			s, isString := plainString(v)
			if !isString {
				ok = false
				return
			}
			*plainStringField(ev, field) = s
		}
	})
	return r, ok
}

// The fields of the plain form, by their JSON names.
const (
	fieldID = iota + 1
	fieldType
	fieldOccurredAt
	fieldOrganizationID
	fieldRecipients
	fieldPriority
	fieldTitle
	fieldMessage
	fieldData
)

func plainField(key []byte) int {
	switch string(key) {
	case "id":
		return fieldID
	case "type":
		return fieldType
	case "occurredAt":
		return fieldOccurredAt
	case "organizationId":
		return fieldOrganizationID
	case "recipients":
		return fieldRecipients
	case "priority":
		return fieldPriority
	case "title":
		return fieldTitle
	case "message":
		return fieldMessage
	case "data":
		return fieldData
	}
	return 0
}

func plainStringField(ev *Event, field int) *string {
	switch field {
	case fieldID:
		return &ev.Id
	case fieldType:
		return &ev.Type
	case fieldOrganizationID:
		return &ev.OrganizationId
	case fieldPriority:
		return &ev.Priority
	case fieldTitle:
		return &ev.Title
	}
	return &ev.Message
}

func plainString(v *fastjson.Value) (string, bool) {
	if v.Type() != fastjson.TypeString {
		return "", false
	}
	b, _ := v.StringBytes()
	return string(b), true
}

// plainValue reports whether a data value reads the same through protojson's
// google.protobuf.Value: no object repeats a key (protojson refuses that) and
// every number is finite and written as protojson writes it back, so the
// stored JSON is exactly what protojson would have produced.
func plainValue(v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		ok := true
		keys := make(map[string]struct{}, o.Len())
		o.Visit(func(key []byte, v *fastjson.Value) {
			if !ok {
				return
			}
			if _, dup := keys[string(key)]; dup {
				ok = false
				return
			}
			keys[string(key)] = struct{}{}
			ok = plainValue(v)
		})
		return ok
	case fastjson.TypeArray:
		items, _ := v.Array()
		for _, it := range items {
			if !plainValue(it) {
				return false
			}
		}
		return true
	case fastjson.TypeNumber:
		raw := v.MarshalTo(nil)
		f, err := strconv.ParseFloat(string(raw), 64)
		return err == nil && !math.IsInf(f, 0) && string(raw) == canonicalNumber(f)
	}
	return true
}

// canonicalNumber writes a float64 as protojson (and encoding/json) does.
func canonicalNumber(f float64) string {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	s := strconv.FormatFloat(f, format, -1, 64)
	if format == 'e' { // 1e-07 → 1e-7
		if n := len(s); n >= 4 && s[n-4] == 'e' && s[n-3] == '-' && s[n-2] == '0' {
			s = s[:n-2] + s[n-1:]
		}
	}
	return s
}

// plainTimestamp parses the common RFC 3339 forms: a four-digit year from
// 0001, upper-case T and Z or a ±hh:mm offset, up to nine fractional digits.
func plainTimestamp(s string) (*timestamppb.Timestamp, bool) {
	if !plainTimeShape(s) {
		return nil, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 1 || t.UTC().Year() < 1 || t.UTC().Year() > 9999 {
		return nil, false
	}
	return &timestamppb.Timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}, true
}

func plainTimeShape(s string) bool {
	const head = "dddd-dd-ddTdd:dd:dd"
	if len(s) < len(head)+1 {
		return false
	}
	for i := 0; i < len(head); i++ {
		if head[i] == 'd' {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		} else if s[i] != head[i] {
			return false
		}
	}
	rest := s[len(head):]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return false
		}
		rest = rest[n:]
	}
	if rest == "Z" {
		return true
	}
	return len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && isDigits(rest[1:3]) && rest[3] == ':' && isDigits(rest[4:6])
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
