package config

import (
	"errors"
	"math"
	"strconv"
)

// fields reads typed values from a parsed JSON object, keeping the first type error.
type fields struct {
	m   map[string]any
	err error
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func (f *fields) fail(key, want string) {
	if f.err == nil {
		f.err = errors.New(key + ": must be " + want)
	}
}

func (f *fields) str(key string) string {
	v := f.m[key]
	if v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		f.fail(key, "a string")
	}
	return s
}

func (f *fields) boolean(key string) bool {
	v := f.m[key]
	if v == nil {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		f.fail(key, "a boolean")
	}
	return b
}

func (f *fields) num(key string, min, max int64) int64 {
	n, ok := f.m[key].(float64)
	if !ok || n != math.Trunc(n) || n < float64(min) || n > float64(max) {
		f.fail(key, "an integer from "+strconv.FormatInt(min, 10)+" to "+strconv.FormatInt(max, 10))
		return min
	}
	return int64(n)
}

func (f *fields) strs(key string) []string {
	v := f.m[key]
	if v == nil {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		f.fail(key, "an array of strings")
		return nil
	}
	out := make([]string, 0, len(a))
	for _, e := range a {
		s, ok := e.(string)
		if !ok {
			f.fail(key, "an array of strings")
			return nil
		}
		out = append(out, s)
	}
	return out
}

func (f *fields) strMap(key string) map[string]string {
	m, ok := f.m[key].(map[string]any)
	if !ok {
		f.fail(key, "an object of strings")
		return map[string]string{}
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			f.fail(key, "an object of strings")
			return map[string]string{}
		}
		out[k] = s
	}
	return out
}

func (f *fields) mounts(key string) ([]Mount, error) {
	a, ok := f.m[key].([]any)
	if !ok {
		return nil, errors.New(key + ": must be an array")
	}
	out := make([]Mount, 0, len(a))
	for i, e := range a {
		g := fields{m: asMap(e)}
		where := key + "[" + strconv.Itoa(i) + "]"
		if g.m == nil {
			return nil, errors.New(where + ": must be an object")
		}
		m := Mount{Tag: g.str("tag"), Target: g.str("target"), Type: g.str("type"), ReadOnly: g.boolean("readOnly"), Options: g.str("options")}
		if g.err != nil {
			return nil, errors.New(where + "." + g.err.Error())
		}
		if m.Type == "" {
			m.Type = "virtiofs"
		}
		// ext4: a share given to Firecracker as a disk (tag is the device path, e.g. /dev/vdd)
		if m.Type != "virtiofs" && m.Type != "9p" && m.Type != "ext4" {
			return nil, errors.New(where + ".type: must be \"virtiofs\", \"9p\" or \"ext4\"")
		}
		if m.Tag == "" || len(m.Target) == 0 || m.Target[0] != '/' {
			return nil, errors.New(where + ": needs a tag and an absolute target")
		}
		out = append(out, m)
	}
	return out, nil
}
