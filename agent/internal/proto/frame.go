// Package proto is the wire format between host and agent (docs/agent-protocol.md):
//
//	+----------------------+---------------------------------+
//	| length: u32 big-end. | UTF-8 JSON object, length bytes |
//	+----------------------+---------------------------------+
//
// One frame is one message. Frames are capped so a corrupt or hostile length cannot make the
// agent allocate gigabytes; binary payloads travel base64-encoded in a "data" field.
package proto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
)

// MaxFrame is the largest frame body either side accepts (16 MiB).
const MaxFrame = 16 << 20

// MaxData is the largest raw payload one frame carries: base64 makes it 4/3 larger and the
// JSON around it must still fit in MaxFrame.
const MaxData = 8 << 20

// TooLargeError reports a frame whose declared length exceeds MaxFrame. The stream cannot be
// resynchronised after it (the length may be garbage), so the connection is closed.
type TooLargeError struct{ Size uint32 }

func (e *TooLargeError) Error() string {
	return "Cannot read frame: length over the " + strconv.Itoa(MaxFrame) + "-byte limit (" + strconv.FormatUint(uint64(e.Size), 10) + ")"
}

// ErrTruncated is a stream that ended inside a frame.
var ErrTruncated = errors.New("Cannot read frame: stream ended inside a frame")

// ReadFrame reads one frame body. It returns io.EOF only at a frame boundary.
func ReadFrame(r *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, ErrTruncated
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return nil, &TooLargeError{Size: n}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, ErrTruncated
		}
		return nil, err
	}
	return body, nil
}

// NewFrame starts a frame: 4 bytes reserved for the length, then a JSON object with "id" and
// "type" (every message has both). capHint sizes the buffer for large payloads.
func NewFrame(id int64, typ string, capHint int) *Frame {
	b := make([]byte, 4, 64+capHint)
	o := Frame{jsonvObj(b)}
	o.Int("id", id).Str("type", typ)
	return &o
}
