package main

import (
	"strconv"
	"strings"
	"time"
)

// bootArgs is what /init takes from the kernel command line. Names follow the kernel's own
// parameters (Documentation/admin-guide/kernel-parameters.txt) so a command line that boots
// without an initramfs boots the same way with one.
type bootArgs struct {
	// root= : a device path (/dev/vda, /dev/nvme0n1). LABEL=/UUID= need udev: not supported.
	root string
	// rootfstype= : comma-separated filesystem types to try; empty: ext4, then what
	// /proc/filesystems lists as block-device filesystems.
	fstypes []string
	// rootflags= : the mount data string.
	rootflags string
	// ro / rw: the kernel's default is read-only.
	readOnly bool
	// init= : the program to run on the new root; empty: /sbin/init, /etc/init, /bin/init,
	// /bin/sh, the kernel's own order.
	init string
	// rootwait[=N] bounds the wait for the root device: N seconds (default 10 s). Unlike the
	// kernel's bare rootwait, never forever: a missing disk must fail the boot, not hang it.
	rootWait time.Duration
	// rootdelay=N : seconds to sleep before looking for the root device.
	rootDelay time.Duration
	// initrd.onfail=reboot|poweroff : how a failed boot ends (default reboot: with QEMU's
	// -no-reboot or under Firecracker that ends the VM, where a power-off can leave it halted).
	onFail string
	// initrd.debug : log every step, not just the summary.
	debug bool
	// rootforge.upper= : the instance disk; when set the root is an overlay (overlay.go).
	upper string
	// rootforge.config= : the instance's config disk (a ustar archive of files to write).
	config string
	// moduleParams: "name.key=value" parameters for modules, passed to finit_module as
	// modprobe does (the kernel applies them itself only to built-in code).
	moduleParams map[string][]string
}

const defaultRootWait = 10 * time.Second

func parseCmdline(text string) bootArgs {
	a := bootArgs{readOnly: true, rootWait: defaultRootWait, onFail: "reboot", moduleParams: map[string][]string{}}
	for _, word := range splitCmdline(text) {
		if word == "--" {
			break // what follows belongs to init
		}
		key, value, hasValue := strings.Cut(word, "=")
		switch key {
		case "root":
			a.root = value
		case "rootfstype":
			a.fstypes = nil
			for _, t := range strings.Split(value, ",") {
				if t != "" {
					a.fstypes = append(a.fstypes, t)
				}
			}
		case "rootflags":
			a.rootflags = value
		case "ro":
			a.readOnly = true
		case "rw":
			a.readOnly = false
		case "init":
			a.init = value
		case "rootwait":
			if hasValue {
				if n, err := strconv.Atoi(value); err == nil && n > 0 {
					a.rootWait = time.Duration(n) * time.Second
				}
			}
		case "rootdelay":
			if n, err := strconv.Atoi(value); err == nil && n > 0 {
				a.rootDelay = time.Duration(n) * time.Second
			}
		case "initrd.onfail":
			if value == "poweroff" || value == "reboot" {
				a.onFail = value
			}
		case "initrd.debug":
			a.debug = true
		case "rootforge.upper":
			a.upper = value
		case "rootforge.config":
			a.config = value
		default:
			// modname.param=value (a dot before the first '='; module names use '_', and '-'
			// is accepted for them as modprobe does)
			if dot := strings.IndexByte(key, '.'); dot > 0 && hasValue {
				mod := strings.ReplaceAll(key[:dot], "-", "_")
				a.moduleParams[mod] = append(a.moduleParams[mod], key[dot+1:]+"="+quoteParam(value))
			}
		}
	}
	return a
}

// splitCmdline splits on spaces, keeping double-quoted parts together (the kernel's
// next_arg() rules: quotes may surround the value or the whole word and are removed).
func splitCmdline(text string) []string {
	var words []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, c := range strings.TrimRight(text, "\n") {
		switch {
		case c == '"':
			inQuote = !inQuote
			have = true
		case (c == ' ' || c == '\t' || c == '\n') && !inQuote:
			if have {
				words = append(words, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(c)
			have = true
		}
	}
	if have {
		words = append(words, cur.String())
	}
	return words
}

func quoteParam(v string) string {
	if strings.ContainsAny(v, " \t") {
		return `"` + v + `"`
	}
	return v
}

// moduleName is the kernel's name for a module file: the base name without .ko, '-' as '_'.
func moduleName(path string) string {
	base := path[strings.LastIndexByte(path, '/')+1:]
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// readModuleList reads /etc/initrd-modules: one path per line, in load order; blank lines and
// lines starting with '#' are skipped.
func readModuleList(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		out = append(out, line)
	}
	return out
}
