// Package logx is the agent's logger: one line per event on stderr, which is the kernel console
// when the agent is PID 1. No fmt (binary size); callers join strings themselves.
package logx

import (
	"io"
	"os"
	"sync"
)

var (
	mu      sync.Mutex
	out     io.Writer = os.Stderr
	verbose bool
)

// SetOutput redirects logging (tests) and sets whether Debug lines are written.
func SetOutput(w io.Writer, debug bool) {
	mu.Lock()
	defer mu.Unlock()
	out, verbose = w, debug
}

// SetDebug turns Debug lines on or off.
func SetDebug(on bool) {
	mu.Lock()
	defer mu.Unlock()
	verbose = on
}

func write(level, msg string) {
	mu.Lock()
	defer mu.Unlock()
	// A log write that fails has nowhere to be reported; the console may simply be absent.
	_, _ = io.WriteString(out, "rootforge-agent: "+level+msg+"\n")
}

// Info is for events an operator wants on the console: boot steps, transports, shutdown.
func Info(msg string) { write("", msg) }

// Warn is for problems the agent works around.
func Warn(msg string) { write("warning: ", msg) }

// Debug is for per-request detail, written only when enabled.
func Debug(msg string) {
	mu.Lock()
	on := verbose
	mu.Unlock()
	if on {
		write("debug: ", msg)
	}
}
