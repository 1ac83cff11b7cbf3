package main

import (
	"reflect"
	"testing"
	"time"
)

func TestParseCmdline(t *testing.T) {
	a := parseCmdline(`console=ttyS0 reboot=t root=/dev/vda rw rootfstype=ext4,xfs rootwait=3 init=/sbin/agent virtio_blk.queue_depth=64 vsock.x="a b" initrd.onfail=poweroff -- --flag` + "\n")
	if a.root != "/dev/vda" || a.readOnly || a.init != "/sbin/agent" || a.rootWait != 3*time.Second || a.onFail != "poweroff" {
		t.Fatalf("unexpected %+v", a)
	}
	if !reflect.DeepEqual(a.fstypes, []string{"ext4", "xfs"}) {
		t.Fatalf("fstypes %v", a.fstypes)
	}
	if !reflect.DeepEqual(a.moduleParams["virtio_blk"], []string{"queue_depth=64"}) || !reflect.DeepEqual(a.moduleParams["vsock"], []string{`x="a b"`}) {
		t.Fatalf("module params %v", a.moduleParams)
	}
	if _, ok := a.moduleParams["reboot"]; ok {
		t.Fatal("reboot=t is not a module parameter")
	}
}

func TestDefaults(t *testing.T) {
	a := parseCmdline("root=/dev/vda")
	if !a.readOnly || a.rootWait != defaultRootWait || a.onFail != "reboot" || a.init != "" {
		t.Fatalf("unexpected %+v", a)
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"/lib/modules/6.1/kernel/drivers/virtio/virtio_pci_modern_dev.ko": "virtio_pci_modern_dev",
		"/x/virtio-rng.ko": "virtio_rng",
		"vsock.ko.xz":      "vsock",
	} {
		if got := moduleName(in); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadModuleList(t *testing.T) {
	got := readModuleList("# order\n/a.ko\n\n  /b.ko  \n")
	if !reflect.DeepEqual(got, []string{"/a.ko", "/b.ko"}) {
		t.Fatalf("%v", got)
	}
}
