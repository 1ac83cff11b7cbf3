package procs

import (
	"os"
	"os/signal"
	"syscall"
	"time"
)

// RunReaper reaps on every SIGCHLD until stop is closed. Signals coalesce, so each wake-up
// drains all exited children; a slow tick also catches a signal lost to a full channel.
func (t *Table) RunReaper(stop <-chan struct{}) {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	t.Reap()
	for {
		select {
		case <-sig:
		case <-tick.C:
		case <-stop:
			return
		}
		t.Reap()
	}
}
