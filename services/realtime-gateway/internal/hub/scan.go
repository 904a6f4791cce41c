package hub

// canonicalBody recognises a body written the way notification-api writes
// every live message, json.Marshal of a contract.UserMessage:
// {"event":"<name>","data":<value>}, a name json.Marshal leaves as it is,
// nothing between the tokens and the data a valid JSON value. It returns
// the name and the data; any other body (ok false) goes through
// encoding/json, which this shortcut agrees with on the bodies it takes
// (FuzzFrames, FuzzScanValue): it reads the body once where encoding/json
// reads it three times over (validate, decode, skip the value).
func canonicalBody(body []byte) (event string, data []byte, ok bool) {
	const head, mid = `{"event":"`, `","data":`
	if len(body) < len(head)+len(mid)+2 || string(body[:len(head)]) != head || body[len(body)-1] != '}' {
		return "", nil, false
	}
	i := len(head)
	for i < len(body) && body[i] != '"' {
		if c := body[i]; c < 0x20 || c >= 0x7F || c == '\\' || c == '<' || c == '>' || c == '&' {
			return "", nil, false
		}
		i++
	}
	name := body[len(head):i]
	if len(name) == 0 || len(body)-i < len(mid)+2 || string(body[i:i+len(mid)]) != mid {
		return "", nil, false
	}
	data = body[i+len(mid) : len(body)-1]
	if !validValue(data) {
		return "", nil, false
	}
	return string(name), data, true
}

// maxScanDepth is how deeply validValue follows nested arrays and objects;
// deeper data is left to encoding/json (which allows 10,000 levels).
const maxScanDepth = 64

// validValue reports whether b is exactly one JSON value (RFC 8259, as
// encoding/json reads it: strings are not checked for valid UTF-8) with
// no whitespace around it. It may say false for valid data nested deeper
// than maxScanDepth: the caller then asks encoding/json.
func validValue(b []byte) bool {
	var objects uint64 // bit d set: the container at depth d is an object
	depth, i := 0, 0
	for {
		// a value at i
		if i >= len(b) {
			return false
		}
		var ok bool
		switch c := b[i]; {
		case c == '[' || c == '{':
			if depth == maxScanDepth {
				return false
			}
			objects &^= 1 << depth
			if c == '{' {
				objects |= 1 << depth
			}
			depth++
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // ] or }: empty
				depth--
				i, ok = i+1, true
				break
			}
			if c == '{' {
				if i, ok = memberValue(b, i); !ok {
					return false
				}
			}
			continue // its first element
		case c == '"':
			i, ok = stringEnd(b, i)
		case c == '-' || c >= '0' && c <= '9':
			i, ok = numberEnd(b, i)
		case c == 't':
			i, ok = literalEnd(b, i, "true")
		case c == 'f':
			i, ok = literalEnd(b, i, "false")
		case c == 'n':
			i, ok = literalEnd(b, i, "null")
		}
		if !ok {
			return false
		}
		// after a value: containers close, or the next element follows
	next:
		for {
			if depth == 0 {
				return i == len(b)
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return false
			}
			object := objects>>(depth-1)&1 == 1
			switch {
			case b[i] == ',':
				i = skipSpace(b, i+1)
				if object {
					if i, ok = memberValue(b, i); !ok {
						return false
					}
				}
				break next
			case object && b[i] == '}', !object && b[i] == ']':
				depth--
				i++
			default:
				return false
			}
		}
	}
}

// memberValue reads the name and colon of an object member at i and
// returns where its value starts.
func memberValue(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i, ok := stringEnd(b, i)
	if !ok {
		return i, false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, false
	}
	return skipSpace(b, i+1), true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the end of the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) (int, bool) {
	for i++; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c != '\\':
			i++
			continue
		}
		if i+1 >= len(b) {
			return i, false
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) {
				return i, false
			}
			for _, h := range b[i+2 : i+6] {
				if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
					return i, false
				}
			}
			i += 6
		default:
			return i, false
		}
	}
	return i, false
}

// numberEnd returns the end of the number starting at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digitsEnd(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digitsEnd(b, i+1)
		if j == i+1 {
			return i, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digitsEnd(b, i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}

func digitsEnd(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func literalEnd(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}
