package sys

import (
	"reflect"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	text := "22 1 8:1 / / rw,relatime - ext4 /dev/vda rw\n" +
		"23 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw\n" +
		"40 22 0:33 / /mnt/with\\040space rw - tmpfs tmpfs rw\n"
	got := ParseMountinfo(text)
	want := map[string]bool{"/": true, "/dev": true, "/mnt/with space": true}
	if !reflect.DeepEqual(got, want) {
		t.Fatal(got)
	}
}
