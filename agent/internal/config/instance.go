package config

// instance.json: what `rootforge boot DIR` gives one boot of a sandbox instance, written into
// the root by the initramfs from the instance's config disk (never on the kernel command line):
//
//	{"hostname": "box-1", "env": {"API_URL": "..."}, "mounts": [{"tag": "rfshare0", ...}]}
//
// It applies over agent.json: its hostname wins, its env is the session environment (over
// agent.json's env, under a request's own env), its mounts are mounted by the agent whether it
// is PID 1 or a service (wrapper, systemd, OpenRC).

import (
	"errors"

	"rootforge/agent/internal/jsonv"
)

const DefaultInstancePath = "/etc/rootforge/instance.json"

// Instance is instance.json.
type Instance struct {
	Hostname string
	Env      map[string]string
	Mounts   []Mount
}

// LoadInstance reads instance.json; a missing file (a plain image boot) is nil, nil.
func LoadInstance(path string) (*Instance, error) {
	b, err := readOptional(path)
	if err != nil || b == nil {
		if err != nil {
			return nil, bad(path, err.Error())
		}
		return nil, nil
	}
	v, err := jsonv.Parse(b)
	if err != nil {
		return nil, bad(path, err.Error())
	}
	f := &fields{m: asMap(v)}
	if f.m == nil {
		return nil, bad(path, "not a JSON object")
	}
	in := &Instance{Hostname: f.str("hostname"), Env: map[string]string{}}
	if f.m["env"] != nil {
		in.Env = f.strMap("env")
	}
	if f.m["mounts"] != nil {
		if in.Mounts, err = f.mounts("mounts"); err != nil {
			return nil, bad(path, err.Error())
		}
	}
	if f.err != nil {
		return nil, bad(path, f.err.Error())
	}
	if len(in.Hostname) > 64 {
		return nil, bad(path, "hostname: longer than 64 bytes")
	}
	return in, nil
}

// ApplyInstance puts an instance's settings over the config.
func (c *Config) ApplyInstance(in *Instance) error {
	if in == nil {
		return errors.New("no instance")
	}
	if in.Hostname != "" {
		c.Hostname = in.Hostname
	}
	env := make(map[string]string, len(c.Env)+len(in.Env))
	for k, v := range c.Env {
		env[k] = v
	}
	for k, v := range in.Env {
		env[k] = v
	}
	c.Env = env
	c.Mounts = append(append([]Mount(nil), c.Mounts...), in.Mounts...)
	c.InstanceMounts = in.Mounts
	return nil
}
