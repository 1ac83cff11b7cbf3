package jsonv

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// The reference for what a parse must produce is encoding/json decoding into `any`.
func TestParseMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `12.5e3`, `-1E-2`, `9007199254740991`,
		`"plain"`, `"esc \" \\ \/ \b \f \n \r \t"`, `"\u00e9\u4e2d"`, `"\ud83d\ude00 pair"`,
		`{"id":1,"type":"exec","argv":["sh","-c","echo hi"],"env":{"A":"1"},"stdin":true}`,
		` { "a" : [ 1 , { "b" : null } ] } `, `"ünïcödé raw"`,
	}
	for _, c := range cases {
		got, err := Parse([]byte(c))
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		var want any
		if err := json.Unmarshal([]byte(c), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v want %#v", c, got, want)
		}
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	bad := []string{
		``, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `01`, `1.`, `-`, `.5`, `1e`,
		`tru`, `nul`, `"unterminated`, "\"ctl\x01\"", `"\x"`, `"\u12"`, `{} x`, `{'a':1}`, `NaN`,
		"\x00\x01\x02", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
	}
	for _, c := range bad {
		if v, err := Parse([]byte(c)); err == nil {
			t.Errorf("%q: accepted as %#v", c, v)
		} else if _, ok := err.(*SyntaxError); !ok {
			t.Errorf("%q: error %T, want *SyntaxError", c, err)
		}
	}
}

func TestLoneSurrogateBecomesReplacement(t *testing.T) {
	v, err := Parse([]byte(`"a\ud800b\udc00"`))
	if err != nil || v != "a\ufffdb\ufffd" {
		t.Fatalf("got %q, %v", v, err)
	}
}

func TestWriterRoundTrip(t *testing.T) {
	s := "quote\" back\\ nl\n tab\t ctl\x01\x7f é 中 😀"
	o := Begin(nil)
	o.Str("s", s).Int("n", -42).Bool("b", true).Null("z").Bytes("d", []byte{0, 1, 2, 255})
	out := o.End()
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	want := map[string]any{"s": s, "n": -42.0, "b": true, "z": nil, "d": "AAEC/w=="}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v", got)
	}
	back, err := Parse(out)
	if err != nil || !reflect.DeepEqual(back, want) {
		t.Fatalf("own parser: %#v %v", back, err)
	}
}

func TestInvalidUTF8IsReplaced(t *testing.T) {
	out := AppendString(nil, "a\xffb")
	if string(out) != `"a\ufffdb"` {
		t.Fatalf("got %s", out)
	}
	if !json.Valid(out) {
		t.Fatal("not valid JSON")
	}
}
