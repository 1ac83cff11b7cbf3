package config

import (
	"sort"
	"strings"
)

// Env is an ordered environment: image order first, later layers override in place, new keys
// are appended in sorted order so the result does not depend on map iteration.
type Env struct {
	keys []string
	vals map[string]string
}

// NewEnv parses "K=V" entries (entries without '=' are dropped, as Docker does).
func NewEnv(kv []string) *Env {
	e := &Env{vals: map[string]string{}}
	for _, s := range kv {
		if k, v, ok := strings.Cut(s, "="); ok && k != "" {
			e.Set(k, v)
		}
	}
	return e
}

// Set adds or replaces one variable.
func (e *Env) Set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

// Get returns a variable and whether it is set.
func (e *Env) Get(k string) (string, bool) { v, ok := e.vals[k]; return v, ok }

// Merge overlays m (sorted by key).
func (e *Env) Merge(m map[string]string) *Env {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.Set(k, m[k])
	}
	return e
}

// Clone copies the environment.
func (e *Env) Clone() *Env {
	c := &Env{keys: append([]string(nil), e.keys...), vals: make(map[string]string, len(e.vals))}
	for k, v := range e.vals {
		c.vals[k] = v
	}
	return c
}

// List returns "K=V" strings.
func (e *Env) List() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

// BaseEnv is what an exec starts from: the image's Env with agent.json's env over it, PATH
// defaulted when the image sets none (scratch images often do not).
func (c *Config) BaseEnv(img *Image) *Env {
	e := NewEnv(img.Env)
	e.Merge(c.Env)
	if _, ok := e.Get("PATH"); !ok {
		e.Set("PATH", DefaultPath)
	}
	return e
}

// DefaultWorkdir is agent.json's workdir, else the image's WorkingDir, else "/".
func (c *Config) DefaultWorkdir(img *Image) string {
	if c.Workdir != "" {
		return c.Workdir
	}
	if img.WorkingDir != "" {
		return img.WorkingDir
	}
	return "/"
}

// DefaultUser is agent.json's user, else the image's User, else root.
func (c *Config) DefaultUser(img *Image) string {
	if c.User != "" {
		return c.User
	}
	if img.User != "" {
		return img.User
	}
	return "0:0"
}
