package proto

// Encoders for the messages the agent sends. Each returns a finished frame (length included).

// Error codes: stable strings the host matches on (docs/agent-protocol.md lists them).
const (
	CodeBadRequest  = "BAD_REQUEST"
	CodeUnsupported = "UNSUPPORTED"
	CodeTooLarge    = "TOO_LARGE"
	CodeExecFailed  = "EXEC_FAILED"
	CodeNotRunning  = "NOT_RUNNING"
	CodeBusy        = "BUSY"
	CodeNotAllowed  = "NOT_ALLOWED"
	CodeIO          = "IO_ERROR"
	CodeENOENT      = "ENOENT"
	CodeEACCES      = "EACCES"
	CodeEPERM       = "EPERM"
	CodeEEXIST      = "EEXIST"
	CodeEISDIR      = "EISDIR"
	CodeENOTDIR     = "ENOTDIR"
	CodeENOSPC      = "ENOSPC"
	CodeEROFS       = "EROFS"
	CodeShutdown    = "SHUTTING_DOWN"
)

// ErrorFrame is {id, type:"error", code, message}.
func ErrorFrame(id int64, code, message string) []byte {
	f := NewFrame(id, "error", len(message))
	f.Str("code", code).Str("message", message)
	return f.Finish()
}

// OK is {id, type:"ok"}.
func OK(id int64) []byte { return NewFrame(id, "ok", 0).Finish() }

// Output is a chunk of an exec's stdout or stderr.
func Output(id int64, stream string, data []byte) []byte {
	f := NewFrame(id, stream, len(data)*4/3+16)
	f.Bytes("data", data)
	return f.Finish()
}
