package proto

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"

	"rootforge/agent/internal/jsonv"
)

// Frame is an outgoing message under construction (see NewFrame).
type Frame struct{ *jsonv.Obj }

func jsonvObj(b []byte) *jsonv.Obj { return jsonv.Begin(b) }

// Finish closes the object and fills in the length prefix.
func (f *Frame) Finish() []byte {
	b := f.End()
	binary.BigEndian.PutUint32(b[:4], uint32(len(b)-4))
	return b
}

// Request is a decoded incoming message: its id and type, and the rest of the object for the
// typed accessors below. Accessors record the first problem in Err instead of returning it, so
// a handler reads all its fields and checks once.
type Request struct {
	ID   int64
	Type string
	obj  map[string]any
	Err  error
}

// BadRequest is a request that is well-formed JSON but not a valid message.
type BadRequest struct{ Msg string }

func (e *BadRequest) Error() string { return e.Msg }

func bad(what, reason, value string) *BadRequest {
	m := "Cannot " + what + ": " + reason
	if value != "" {
		m += " (" + value + ")"
	}
	return &BadRequest{Msg: m}
}

// maxID keeps ids exact in a JavaScript number (2^53 - 1).
const maxID = 1<<53 - 1

// Decode parses a frame body into a Request. id must be a non-negative integer and type a
// string; the returned Request carries the id even when the error is about another field, so
// the error reply can be matched.
func Decode(body []byte) (*Request, error) {
	v, err := jsonv.Parse(body)
	if err != nil {
		return nil, &BadRequest{Msg: "Cannot parse request: " + err.Error()}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, bad("parse request", "not a JSON object", "")
	}
	r := &Request{obj: obj}
	idv, ok := obj["id"].(float64)
	if !ok || idv < 0 || idv > maxID || idv != math.Trunc(idv) {
		return r, bad("parse request", "id must be a non-negative integer", "")
	}
	r.ID = int64(idv)
	if r.Type, ok = obj["type"].(string); !ok || r.Type == "" {
		return r, bad("parse request", "type must be a non-empty string", "")
	}
	return r, nil
}

func (r *Request) fail(key, reason string) {
	if r.Err == nil {
		r.Err = bad(r.Type, "field "+key+" "+reason, "")
	}
}

// Has reports whether key is present and not null.
func (r *Request) Has(key string) bool { return r.obj[key] != nil }

// Str returns a string field ("" when absent).
func (r *Request) Str(key string) string {
	v, ok := r.obj[key]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.fail(key, "must be a string")
	}
	return s
}

// Bool returns a boolean field (false when absent).
func (r *Request) Bool(key string) bool {
	v, ok := r.obj[key]
	if !ok || v == nil {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		r.fail(key, "must be a boolean")
	}
	return b
}

// Int returns an integer field in [min, max], or def when absent.
func (r *Request) Int(key string, def, min, max int64) int64 {
	v, ok := r.obj[key]
	if !ok || v == nil {
		return def
	}
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || f < float64(min) || f > float64(max) {
		r.fail(key, "must be an integer from "+strconv.FormatInt(min, 10)+" to "+strconv.FormatInt(max, 10))
		return def
	}
	return int64(f)
}

// Strings returns an array-of-strings field (nil when absent).
func (r *Request) Strings(key string) []string {
	v, ok := r.obj[key]
	if !ok || v == nil {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		r.fail(key, "must be an array of strings")
		return nil
	}
	out := make([]string, len(a))
	for i, e := range a {
		if out[i], ok = e.(string); !ok {
			r.fail(key, "must be an array of strings")
			return nil
		}
	}
	return out
}

// StringMap returns an object-of-strings field (nil when absent).
func (r *Request) StringMap(key string) map[string]string {
	v, ok := r.obj[key]
	if !ok || v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		r.fail(key, "must be an object of strings")
		return nil
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		s, ok := e.(string)
		if !ok {
			r.fail(key, "must be an object of strings")
			return nil
		}
		out[k] = s
	}
	return out
}

// Data returns a base64 field decoded ("" and absent both give an empty slice).
func (r *Request) Data(key string) []byte {
	s := r.Str(key)
	if s == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		r.fail(key, "must be standard base64")
	}
	return b
}

// Raw returns a field as parsed (nil when absent), for fields that accept several types.
func (r *Request) Raw(key string) any { return r.obj[key] }

// Fail records a validation problem found by a handler.
func (r *Request) Fail(key, reason string) { r.fail(key, reason) }
