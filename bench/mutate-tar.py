#!/usr/bin/env python3
"""Writes a "v2" of a rootfs tar for the distribution benchmark: every Nth regular file (in archive
order) with content gets a line appended, as a package upgrade would change it; everything else
(xattrs, times, owners, links) is copied as it is. Prints "changed total" on stdout.

usage: mutate-tar.py IN.tar OUT.tar N
"""
import io
import sys
import tarfile

src, dst, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
changed = total = 0
with tarfile.open(src, 'r:') as tin, tarfile.open(dst, 'w:', format=tarfile.PAX_FORMAT) as tout:
    for m in tin:
        data = None
        if m.isreg():
            total += 1
            f = tin.extractfile(m)
            if m.size > 0 and total % every == 0:
                body = f.read() + b'\n# rootforge distribution bench v2\n'
                m.size = len(body)
                data = io.BytesIO(body)
                changed += 1
            else:
                data = f
        tout.addfile(m, data)
print(changed, total)
