package session

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"syscall"
)

var signalNames = []struct {
	name string
	sig  syscall.Signal
}{
	{"SIGHUP", syscall.SIGHUP}, {"SIGINT", syscall.SIGINT}, {"SIGQUIT", syscall.SIGQUIT},
	{"SIGILL", syscall.SIGILL}, {"SIGTRAP", syscall.SIGTRAP}, {"SIGABRT", syscall.SIGABRT},
	{"SIGBUS", syscall.SIGBUS}, {"SIGFPE", syscall.SIGFPE}, {"SIGKILL", syscall.SIGKILL},
	{"SIGUSR1", syscall.SIGUSR1}, {"SIGSEGV", syscall.SIGSEGV}, {"SIGUSR2", syscall.SIGUSR2},
	{"SIGPIPE", syscall.SIGPIPE}, {"SIGALRM", syscall.SIGALRM}, {"SIGTERM", syscall.SIGTERM},
	{"SIGCHLD", syscall.SIGCHLD}, {"SIGCONT", syscall.SIGCONT}, {"SIGSTOP", syscall.SIGSTOP},
	{"SIGTSTP", syscall.SIGTSTP}, {"SIGTTIN", syscall.SIGTTIN}, {"SIGTTOU", syscall.SIGTTOU},
	{"SIGURG", syscall.SIGURG}, {"SIGXCPU", syscall.SIGXCPU}, {"SIGXFSZ", syscall.SIGXFSZ},
	{"SIGVTALRM", syscall.SIGVTALRM}, {"SIGPROF", syscall.SIGPROF}, {"SIGWINCH", syscall.SIGWINCH},
	{"SIGIO", syscall.SIGIO}, {"SIGPWR", syscall.SIGPWR}, {"SIGSYS", syscall.SIGSYS},
}

// signalName is "SIGTERM" for known signals and "SIG<n>" otherwise (real-time signals).
func signalName(sig syscall.Signal) string {
	for _, s := range signalNames {
		if s.sig == sig {
			return s.name
		}
	}
	return "SIG" + strconv.Itoa(int(sig))
}

// parseSignal accepts "SIGTERM", "TERM" or a number from 1 to 64.
func parseSignal(v any) (syscall.Signal, error) {
	switch x := v.(type) {
	case float64:
		if x >= 1 && x <= 64 && x == math.Trunc(x) {
			return syscall.Signal(int(x)), nil
		}
	case string:
		name := strings.ToUpper(x)
		if !strings.HasPrefix(name, "SIG") {
			name = "SIG" + name
		}
		for _, s := range signalNames {
			if s.name == name {
				return s.sig, nil
			}
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(name, "SIG")); err == nil && n >= 1 && n <= 64 {
			return syscall.Signal(n), nil
		}
	}
	return 0, errors.New("must be a signal name like \"SIGTERM\" or a number from 1 to 64")
}
