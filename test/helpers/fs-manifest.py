#!/usr/bin/env python3
"""Dumps every entry under a directory (a loop-mounted image or an extraction) as JSON, using
the kernel's view through lstat/readlink/listxattr: the independent side of round-trip tests.

usage: fs-manifest.py ROOT
Paths are relative to ROOT, as hex of their bytes. lost+found at the top is skipped.
"""
import hashlib
import json
import os
import stat
import sys

TYPES = {stat.S_IFREG: 'file', stat.S_IFDIR: 'dir', stat.S_IFLNK: 'symlink', stat.S_IFCHR: 'chardev',
         stat.S_IFBLK: 'blockdev', stat.S_IFIFO: 'fifo', stat.S_IFSOCK: 'socket'}


def entry(root, rel):
    path = os.path.join(root, rel) if rel else root
    st = os.lstat(path)
    kind = TYPES[stat.S_IFMT(st.st_mode)]
    rec = {
        'path': rel.hex() if rel else '',
        'type': kind,
        'mode': stat.S_IMODE(st.st_mode),
        'uid': st.st_uid,
        'gid': st.st_gid,
        'mtime_ns': str(st.st_mtime_ns),  # a string: JSON numbers lose nanoseconds in JS
        'ino': st.st_ino,
        'nlink': st.st_nlink,
        'xattrs': {},
    }
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        names = []
    for n in sorted(names):
        rec['xattrs'][n] = os.getxattr(path, n, follow_symlinks=False).hex()
    if kind == 'file':
        rec['size'] = st.st_size
        h = hashlib.sha256()
        with open(path, 'rb') as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        rec['sha256'] = h.hexdigest()
    elif kind == 'symlink':
        rec['target'] = os.readlink(path).hex()
    elif kind in ('chardev', 'blockdev'):
        rec['major'] = os.major(st.st_rdev)
        rec['minor'] = os.minor(st.st_rdev)
    return rec


def main(root):
    root = os.fsencode(root)
    out = [entry(root, b'')]
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = b'' if rel_dir == b'.' else rel_dir
        if rel_dir == b'':
            dirnames[:] = [d for d in dirnames if d != b'lost+found']
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            out.append(entry(root, os.path.join(rel_dir, name) if rel_dir else name))
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main(sys.argv[1])
