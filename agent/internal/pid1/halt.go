package pid1

import (
	"errors"
	"syscall"
	"time"

	"rootforge/agent/internal/logx"
	"rootforge/agent/internal/sys"
)

// Halt is PID 1's end: SIGTERM to every process, SIGKILL to whatever is left after grace,
// sync, unmount what Boot mounted (newest first; busy ones like /dev are expected to fail),
// remount / read-only, sync again, then reboot(cmd). reap collects exited children and reports
// whether any remain (procs.Table.Reap). Halt returns only if the reboot call fails, or under
// a fake System.
func Halt(s sys.System, st *State, reap func() bool, grace time.Duration, cmd int) error {
	logx.Info("stopping all processes")
	if stopAll(s, reap, syscall.SIGTERM, grace) {
		logx.Warn("processes still running after SIGTERM; sending SIGKILL")
		if stopAll(s, reap, syscall.SIGKILL, 2*time.Second) {
			logx.Warn("processes survived SIGKILL (uninterruptible sleep?); going on")
		}
	}
	s.Sync()
	for i := len(st.Mounted) - 1; i >= 0; i-- {
		if err := s.Unmount(st.Mounted[i], 0); err != nil {
			logx.Debug("unmount " + st.Mounted[i] + ": " + err.Error())
		}
	}
	if err := s.Mount("", "/", "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		logx.Warn("Cannot remount / read-only: " + err.Error())
	}
	s.Sync()
	what := "power off"
	if cmd == sys.RebootRestart {
		what = "reboot"
	}
	logx.Info(what)
	if err := s.Reboot(cmd); err != nil {
		return errors.New("Cannot " + what + ": " + err.Error())
	}
	return nil
}

// stopAll signals every process but PID 1 and waits up to grace for all children to be
// reaped. It reports whether some remain.
func stopAll(s sys.System, reap func() bool, sig syscall.Signal, grace time.Duration) bool {
	if err := s.Kill(-1, sig); err != nil && err != syscall.ESRCH {
		logx.Warn("Cannot signal all processes: " + err.Error())
	}
	deadline := time.Now().Add(grace)
	for {
		if !reap() {
			return false
		}
		if time.Now().After(deadline) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
}
