package jsonv

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"
)

// Obj appends one JSON object to a byte slice, key by key, in the order written. Keys are
// trusted constants; values are escaped.
type Obj struct {
	B []byte
	n int
}

// Begin starts an object at the end of b.
func Begin(b []byte) *Obj { return &Obj{B: append(b, '{')} }

func (o *Obj) key(k string) {
	if o.n > 0 {
		o.B = append(o.B, ',')
	}
	o.n++
	o.B = AppendString(o.B, k)
	o.B = append(o.B, ':')
}

func (o *Obj) Str(k, v string) *Obj { o.key(k); o.B = AppendString(o.B, v); return o }

func (o *Obj) Int(k string, v int64) *Obj { o.key(k); o.B = strconv.AppendInt(o.B, v, 10); return o }

func (o *Obj) Bool(k string, v bool) *Obj { o.key(k); o.B = strconv.AppendBool(o.B, v); return o }

func (o *Obj) Null(k string) *Obj { o.key(k); o.B = append(o.B, "null"...); return o }

// Bytes writes v as a standard base64 string (with padding).
func (o *Obj) Bytes(k string, v []byte) *Obj {
	o.key(k)
	o.B = append(o.B, '"')
	n := len(o.B)
	o.B = append(o.B, make([]byte, base64.StdEncoding.EncodedLen(len(v)))...)
	base64.StdEncoding.Encode(o.B[n:], v)
	o.B = append(o.B, '"')
	return o
}

// End closes the object and returns the buffer.
func (o *Obj) End() []byte { return append(o.B, '}') }

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 bytes become U+FFFD, as encoding/json
// does, so the output is always valid JSON text.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
