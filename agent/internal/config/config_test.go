package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMissingFilesGiveDefaults(t *testing.T) {
	cfg, warn, err := Load("/nonexistent/agent.json")
	if err != nil || len(warn) != 0 || !reflect.DeepEqual(cfg, Defaults()) {
		t.Fatalf("%+v %v %v", cfg, warn, err)
	}
	img, err := LoadImage("/nonexistent/image.json")
	if err != nil || img.User != "" || img.Env != nil {
		t.Fatalf("%+v %v", img, err)
	}
}

func TestFullConfig(t *testing.T) {
	p := write(t, "agent.json", `{"transports":["virtio-serial"],"vsockPort":2000,"serialPortName":"x.y",
	  "hostname":"box","mounts":[{"tag":"ws","target":"/workspace"},{"tag":"sk","target":"/skills","type":"9p","readOnly":true}],
	  "env":{"A":"1"},"workdir":"/workspace","user":"1000:1000","init":"systemd","allowPoweroff":true,
	  "powerOffMode":"reboot","stopTimeoutMs":500,"debug":true,"typo":1}`)
	cfg, warn, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{Transports: []string{"virtio-serial"}, VsockPort: 2000, SerialPortName: "x.y", Hostname: "box",
		Mounts: []Mount{{Tag: "ws", Target: "/workspace", Type: "virtiofs"}, {Tag: "sk", Target: "/skills", Type: "9p", ReadOnly: true}},
		Env:    map[string]string{"A": "1"}, Workdir: "/workspace", User: "1000:1000", Init: "systemd", AllowPoweroff: true,
		PowerOffMode: "reboot", StopTimeoutMs: 500, Debug: true}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v", cfg)
	}
	if len(warn) != 1 || !strings.Contains(warn[0], `"typo"`) {
		t.Fatalf("warnings %v", warn)
	}
}

func TestBadConfigs(t *testing.T) {
	for _, body := range []string{
		`[]`, `{"transports":["tcp"]}`, `{"vsockPort":0}`, `{"vsockPort":"1024"}`, `{"mounts":[{"tag":"x"}]}`,
		`{"mounts":[{"tag":"x","target":"/x","type":"nfs"}]}`, `{"powerOffMode":"halt"}`, `{"env":{"A":1}}`, `{`,
	} {
		if _, _, err := Load(write(t, "a.json", body)); err == nil || !strings.HasPrefix(err.Error(), "Cannot load config: ") {
			t.Errorf("%s: %v", body, err)
		}
	}
}

func TestImageJSONAndEnvLayers(t *testing.T) {
	img, err := LoadImage(write(t, "image.json", `{"source":"x","User":null,"Env":["PATH=/img/bin","FOO=image","BAR=image","NOEQ"],"WorkingDir":"/app","Labels":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.Env = map[string]string{"BAR": "agent", "ZED": "agent"}
	env := cfg.BaseEnv(img).Merge(map[string]string{"FOO": "request"}).List()
	want := []string{"PATH=/img/bin", "FOO=request", "BAR=agent", "ZED=agent"}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("env %v", env)
	}
	if cfg.DefaultWorkdir(img) != "/app" || cfg.DefaultUser(img) != "0:0" {
		t.Fatal("defaults from image")
	}
	if e := Defaults().BaseEnv(&Image{}); !reflect.DeepEqual(e.List(), []string{"PATH=" + DefaultPath}) {
		t.Fatalf("empty image env %v", e.List())
	}
}

func TestResolveUsers(t *testing.T) {
	u := Users{
		Passwd: write(t, "passwd", "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n# comment\nbroken\n"),
		Group:  write(t, "group", "root:x:0:\nnode:x:1000:\ndocker:x:999:node,other\nwheel:x:10:node\n"),
	}
	cases := []struct {
		spec string
		want Cred
	}{
		{"", Cred{UID: 0, GID: 0, Home: "/root"}},
		{"node", Cred{UID: 1000, GID: 1000, Home: "/home/node", Groups: []uint32{999, 10}}},
		{"1000", Cred{UID: 1000, GID: 1000, Home: "/home/node", Groups: []uint32{999, 10}}},
		{"node:docker", Cred{UID: 1000, GID: 999, Home: "/home/node", Groups: []uint32{10}}},
		{"4242", Cred{UID: 4242, GID: 0, Home: "/"}},
		{"4242:77", Cred{UID: 4242, GID: 77, Home: "/"}},
	}
	for _, c := range cases {
		got, err := u.Resolve(c.spec)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %+v %v, want %+v", c.spec, got, err, c.want)
		}
	}
	for _, spec := range []string{"nobody", "node:nogroup"} {
		if _, err := u.Resolve(spec); err == nil {
			t.Errorf("%q resolved", spec)
		}
	}
}

func TestBadKeysKeepTheGoodOnes(t *testing.T) {
	cfg, _, err := Load(write(t, "a.json", `{"hostname":"box","vsockPort":-1,"mounts":[{"tag":"x"}],"user":"1000","init":"/sbin/init","initMode":"agent"}`))
	if err == nil || !strings.Contains(err.Error(), "vsockPort") || !strings.Contains(err.Error(), "mounts[0]") {
		t.Fatalf("error %v", err)
	}
	if cfg.Hostname != "box" || cfg.User != "1000" || cfg.VsockPort != DefaultVsockPort || cfg.Mounts != nil {
		t.Fatalf("%+v", cfg)
	}
}
