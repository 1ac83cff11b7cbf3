package procs

import (
	"syscall"
	"testing"

	"rootforge/agent/internal/sys"
)

func TestReapRoutesRegisteredAndCollectsOrphans(t *testing.T) {
	f := sys.NewFake()
	tb := New(f)
	pid, ch, err := tb.Start(func() (int, error) { return 100, nil })
	if err != nil || pid != 100 {
		t.Fatal(err)
	}
	f.AddExit(555, 0)                        // an orphan re-parented to PID 1
	f.AddExit(100, syscall.WaitStatus(7<<8)) // exit code 7
	if !tb.Reap() {
		t.Fatal("children reported gone while wait4 says some run")
	}
	select {
	case ws := <-ch:
		if ws.ExitStatus() != 7 {
			t.Fatalf("status %v", ws)
		}
	default:
		t.Fatal("registered child's status not delivered")
	}
	if tb.Orphans() != 1 || tb.Running() != 0 {
		t.Fatalf("orphans %d running %d", tb.Orphans(), tb.Running())
	}
	f.SetNoChildren(true)
	if tb.Reap() {
		t.Fatal("ECHILD must mean no children left")
	}
}

func TestStartFailureRegistersNothing(t *testing.T) {
	tb := New(sys.NewFake())
	if _, _, err := tb.Start(func() (int, error) { return 0, syscall.ENOENT }); err != syscall.ENOENT {
		t.Fatal(err)
	}
	if tb.Running() != 0 {
		t.Fatal("failed start registered")
	}
}
