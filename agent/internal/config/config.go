// Package config reads the two files the image builder leaves for the agent:
//
//	/etc/rootforge/agent.json  how the agent runs (transports, hostname, mounts, defaults)
//	/etc/rootforge/image.json  the OCI image config subset (Env, WorkingDir, User)
//
// Every field is optional; docs/agent-protocol.md lists the defaults. A missing file means all
// defaults. Unknown keys are reported as warnings so a typo is visible on the console.
package config

import (
	"errors"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"rootforge/agent/internal/jsonv"
)

const (
	DefaultConfigPath = "/etc/rootforge/agent.json"
	DefaultImagePath  = "/etc/rootforge/image.json"
	DefaultVsockPort  = 1024
	DefaultSerialName = "org.rootforge.agent"
	DefaultHostname   = "sandbox"
	DefaultPath       = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Mount is a host share to mount at boot (PID 1 only).
type Mount struct {
	Tag      string // virtio-fs tag or 9p mount tag
	Target   string // absolute path in the guest, created if missing
	Type     string // "virtiofs" or "9p"
	ReadOnly bool
	Options  string // extra mount data, appended to the type's defaults
}

// Config is agent.json.
type Config struct {
	Transports     []string // "vsock", "virtio-serial"
	VsockPort      uint32
	SerialPortName string
	Hostname       string // "" = keep /etc/hostname, else DefaultHostname (resolved at boot)
	Mounts         []Mount
	Env            map[string]string
	Workdir        string
	User           string
	Init           string // how the image starts the agent: "agent" (PID 1), "systemd", "openrc"
	AllowPoweroff  bool   // serve mode: may a shutdown request power the machine off?
	PowerOffMode   string // "poweroff" or "reboot": how PID 1 ends the VM by default
	StopTimeoutMs  int64  // grace between SIGTERM and SIGKILL at shutdown
	Debug          bool
	// InstanceMounts are the mounts instance.json added (a service mounts these itself).
	InstanceMounts []Mount
}

// Image is the part of image.json the agent uses.
type Image struct {
	Env        []string
	WorkingDir string
	User       string
}

// Defaults is the configuration used when agent.json is absent.
func Defaults() *Config {
	return &Config{
		Transports:     []string{"vsock", "virtio-serial"},
		VsockPort:      DefaultVsockPort,
		SerialPortName: DefaultSerialName,
		Env:            map[string]string{},
		Init:           "agent",
		PowerOffMode:   "poweroff",
		StopTimeoutMs:  3000,
	}
}

// Error is a config file that exists but cannot be used.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func bad(path, reason string) error {
	return &Error{Msg: "Cannot load config: " + reason + " (" + path + ")"}
}

// readOptional returns nil, nil for a missing file.
func readOptional(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Load reads agent.json. warnings lists keys it ignored. With an error, cfg still holds the
// defaults plus every key that was valid.
func Load(path string) (cfg *Config, warnings []string, err error) {
	cfg = Defaults()
	b, err := readOptional(path)
	if err != nil {
		return cfg, nil, bad(path, err.Error())
	}
	if b == nil {
		return cfg, nil, nil
	}
	warnings, err = Parse(cfg, b)
	if err != nil {
		return cfg, warnings, bad(path, err.Error())
	}
	return cfg, warnings, nil
}

// LoadImage reads image.json (all fields may be null or absent).
func LoadImage(path string) (*Image, error) {
	img := &Image{}
	b, err := readOptional(path)
	if err != nil || b == nil {
		if err != nil {
			return img, bad(path, err.Error())
		}
		return img, nil
	}
	v, err := jsonv.Parse(b)
	if err != nil {
		return img, bad(path, err.Error())
	}
	f := fields{m: asMap(v)}
	if f.m == nil {
		return img, bad(path, "not a JSON object")
	}
	img.Env = f.strs("Env")
	img.WorkingDir = f.str("WorkingDir")
	img.User = f.str("User")
	if f.err != nil {
		return &Image{}, bad(path, f.err.Error())
	}
	return img, nil
}

// Parse applies the JSON in b over cfg, key by key: a bad value leaves that key at its default
// and is reported in err, the other keys still apply (PID 1 keeps going with what is usable;
// the service refuses to start). warnings lists unknown keys.
func Parse(cfg *Config, b []byte) (warnings []string, err error) {
	v, err := jsonv.Parse(b)
	if err != nil {
		return nil, err
	}
	m := asMap(v)
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	var problems []string
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		apply, known := keyParsers[k]
		if !known {
			warnings = append(warnings, "ignoring unknown key "+strconv.Quote(k)+" in agent config")
			continue
		}
		if m[k] == nil {
			continue // null means default
		}
		f := &fields{m: m}
		next := *cfg
		if err := apply(&next, f, k); err != nil {
			problems = append(problems, err.Error())
		} else if f.err != nil {
			problems = append(problems, f.err.Error())
		} else {
			*cfg = next
		}
	}
	if len(problems) > 0 {
		return warnings, errors.New(strings.Join(problems, "; "))
	}
	return warnings, nil
}

// keyParsers read one agent.json key each into a copy of the config.
var keyParsers = map[string]func(c *Config, f *fields, k string) error{
	"transports": func(c *Config, f *fields, k string) error {
		c.Transports = f.strs(k)
		for _, t := range c.Transports {
			if t != "vsock" && t != "virtio-serial" {
				return errors.New("transports: unknown transport " + strconv.Quote(t))
			}
		}
		return nil
	},
	"vsockPort":      func(c *Config, f *fields, k string) error { c.VsockPort = uint32(f.num(k, 1, 0xfffffffe)); return nil },
	"serialPortName": func(c *Config, f *fields, k string) error { c.SerialPortName = f.str(k); return nil },
	"hostname": func(c *Config, f *fields, k string) error {
		c.Hostname = f.str(k)
		if len(c.Hostname) > 64 {
			return errors.New("hostname: longer than 64 bytes")
		}
		return nil
	},
	"mounts": func(c *Config, f *fields, k string) (err error) {
		c.Mounts, err = f.mounts(k)
		return err
	},
	"env":     func(c *Config, f *fields, k string) error { c.Env = f.strMap(k); return nil },
	"workdir": func(c *Config, f *fields, k string) error { c.Workdir = f.str(k); return nil },
	"user":    func(c *Config, f *fields, k string) error { c.User = f.str(k); return nil },
	// init and initMode record how the image builder starts the agent; the agent goes by its PID.
	"init":          func(c *Config, f *fields, k string) error { c.Init = f.str(k); return nil },
	"initMode":      func(c *Config, f *fields, k string) error { f.str(k); return nil },
	"allowPoweroff": func(c *Config, f *fields, k string) error { c.AllowPoweroff = f.boolean(k); return nil },
	"powerOffMode": func(c *Config, f *fields, k string) error {
		c.PowerOffMode = f.str(k)
		if c.PowerOffMode != "poweroff" && c.PowerOffMode != "reboot" {
			return errors.New("powerOffMode: must be \"poweroff\" or \"reboot\"")
		}
		return nil
	},
	"stopTimeoutMs": func(c *Config, f *fields, k string) error { c.StopTimeoutMs = f.num(k, 0, 600000); return nil },
	"debug":         func(c *Config, f *fields, k string) error { c.Debug = f.boolean(k); return nil },

	// the image's architecture, for the host (rootforge boot picks the VMM and kernel by it)
	"architecture": func(c *Config, f *fields, k string) error { f.str(k); return nil },
}
