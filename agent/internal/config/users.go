package config

import (
	"errors"
	"os"
	"strconv"
	"strings"
)

// Cred is who an exec runs as, resolved from a "user[:group]" spec the way Docker does:
// names are looked up in the image's /etc/passwd and /etc/group; a numeric uid not in passwd
// gets gid 0 and HOME "/".
type Cred struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups from /etc/group
	Home     string
}

// Users reads account files; the paths are fields so tests can point them at fixtures.
type Users struct {
	Passwd string
	Group  string
}

// SystemUsers reads the running system's /etc/passwd and /etc/group.
var SystemUsers = Users{Passwd: "/etc/passwd", Group: "/etc/group"}

type entry struct {
	name string
	id   uint32
	gid  uint32 // passwd only
	home string // passwd only
	mem  []string
}

// parse reads passwd (7 fields) or group (4 fields) lines; a missing file is empty.
func parseDB(path string, passwd bool) []entry {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []entry
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if (passwd && len(f) < 7) || (!passwd && len(f) < 4) || strings.HasPrefix(line, "#") {
			continue
		}
		id, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		e := entry{name: f[0], id: uint32(id)}
		if passwd {
			g, err := strconv.ParseUint(f[3], 10, 32)
			if err != nil {
				continue
			}
			e.gid, e.home = uint32(g), f[5]
		} else if f[3] != "" {
			e.mem = strings.Split(f[3], ",")
		}
		out = append(out, e)
	}
	return out
}

func find(db []entry, s string) (entry, bool) {
	n, numErr := strconv.ParseUint(s, 10, 32)
	for _, e := range db {
		if (numErr == nil && e.id == uint32(n)) || (numErr != nil && e.name == s) {
			return e, true
		}
	}
	if numErr == nil {
		return entry{id: uint32(n)}, true
	}
	return entry{}, false
}

// Resolve turns "", "uid", "name", "uid:gid", "name:group" into a Cred.
func (u Users) Resolve(spec string) (Cred, error) {
	if spec == "" {
		spec = "0"
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	pw := parseDB(u.Passwd, true)
	ue, ok := find(pw, userPart)
	if !ok {
		return Cred{}, errors.New("Cannot resolve user: no such user in " + u.Passwd + " (" + userPart + ")")
	}
	c := Cred{UID: ue.id, GID: ue.gid, Home: ue.home}
	if c.Home == "" {
		c.Home = "/"
		if c.UID == 0 {
			c.Home = "/root"
		}
	}
	gr := parseDB(u.Group, false)
	if hasGroup {
		ge, ok := find(gr, groupPart)
		if !ok {
			return Cred{}, errors.New("Cannot resolve group: no such group in " + u.Group + " (" + groupPart + ")")
		}
		c.GID = ge.id
	}
	if ue.name != "" {
		for _, g := range gr {
			for _, m := range g.mem {
				if m == ue.name && g.id != c.GID {
					c.Groups = append(c.Groups, g.id)
				}
			}
		}
	}
	return c, nil
}
