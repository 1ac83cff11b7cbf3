package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstanceOverAgentConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "instance.json")
	if in, err := LoadInstance(p); in != nil || err != nil {
		t.Fatalf("a missing instance.json is no instance: %v %v", in, err)
	}
	doc := `{"hostname":"box-7","env":{"API":"s3cret","PATH":"/opt/bin"},"mounts":[{"tag":"rfshare0","target":"/workspace"},{"tag":"/dev/vdd","target":"/skills","type":"ext4","readOnly":true}]}`
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := LoadInstance(p)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.Hostname = "from-image"
	cfg.Env = map[string]string{"API": "old", "KEEP": "1"}
	cfg.Mounts = []Mount{{Tag: "img", Target: "/img", Type: "virtiofs"}}
	if err := cfg.ApplyInstance(in); err != nil {
		t.Fatal(err)
	}
	if cfg.Hostname != "box-7" || cfg.Env["API"] != "s3cret" || cfg.Env["KEEP"] != "1" || cfg.Env["PATH"] != "/opt/bin" {
		t.Fatalf("unexpected %+v", cfg)
	}
	if len(cfg.Mounts) != 3 || len(cfg.InstanceMounts) != 2 || cfg.InstanceMounts[1].Type != "ext4" || !cfg.InstanceMounts[1].ReadOnly || cfg.InstanceMounts[0].Type != "virtiofs" {
		t.Fatalf("mounts %+v / %+v", cfg.Mounts, cfg.InstanceMounts)
	}
	env := cfg.BaseEnv(&Image{Env: []string{"PATH=/usr/bin"}}).List()
	if env[0] != "PATH=/opt/bin" {
		t.Fatalf("session env wins over the image's: %v", env)
	}
}

func TestInstanceRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	for name, doc := range map[string]string{
		"not-json":      `{`,
		"bad-mount":     `{"mounts":[{"tag":"x","target":"relative"}]}`,
		"bad-type":      `{"mounts":[{"tag":"x","target":"/x","type":"nfs"}]}`,
		"long-hostname": `{"hostname":"` + strings.Repeat("a", 65) + `"}`,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadInstance(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
