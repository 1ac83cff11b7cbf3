// Package procs owns every wait4 the agent makes.
//
// Why one owner: as PID 1 the agent must reap orphans with wait4(-1), and that call would also
// steal the exit status of a process an exec is waiting for. So nothing else waits: Start
// registers a child's pid while holding the table lock (a child cannot be reaped between
// fork and registration), and Reap hands each status to the channel registered for that pid;
// statuses of unregistered pids (orphans re-parented to PID 1) are just collected.
package procs

import (
	"strconv"
	"sync"
	"syscall"

	"rootforge/agent/internal/logx"
)

// Waiter is the part of sys.System the table needs.
type Waiter interface {
	Wait4(pid int, status *syscall.WaitStatus, options int) (int, error)
}

// Table maps running children to the channels their exit statuses go to.
type Table struct {
	w       Waiter
	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
	orphans int
}

// New returns an empty table over w.
func New(w Waiter) *Table {
	return &Table{w: w, waiting: map[int]chan syscall.WaitStatus{}}
}

// Start runs spawn (which forks) under the table lock and registers the pid it returns. The
// channel receives the child's wait status exactly once.
func (t *Table) Start(spawn func() (int, error)) (int, <-chan syscall.WaitStatus, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pid, err := spawn()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	t.waiting[pid] = ch
	return pid, ch, nil
}

// Reap collects every child that has exited (never blocks). It reports whether children
// remain: false once wait4 says ECHILD.
func (t *Table) Reap() (childrenLeft bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := t.w.Wait4(-1, &ws, syscall.WNOHANG)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.ECHILD {
			return false
		}
		if err != nil {
			logx.Warn("Cannot reap children: wait4 failed (" + err.Error() + ")")
			return true
		}
		if pid <= 0 {
			return true
		}
		if ch, ok := t.waiting[pid]; ok {
			delete(t.waiting, pid)
			ch <- ws
		} else {
			t.orphans++
			logx.Debug("reaped orphan pid " + strconv.Itoa(pid))
		}
	}
}

// Orphans is how many unregistered children Reap has collected.
func (t *Table) Orphans() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.orphans
}

// Running is how many registered children have not been reaped yet.
func (t *Table) Running() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.waiting)
}
