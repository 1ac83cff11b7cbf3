#!/usr/bin/env python3
"""Independent reference for the tar reader tests: dumps an archive's members as JSON using
CPython's own `tarfile` module (a separate implementation from ours, incl. GNU sparse).

usage: tar-dump.py ARCHIVE   (compression auto-detected by tarfile: gz, bz2, xz; or plain)
Byte strings (names, link targets, pax values) are given as hex so nothing is lost to decoding:
tarfile is opened with utf-8 + surrogateescape, which re-encodes to the exact stored bytes.
"""
import hashlib
import json
import sys
import tarfile

ENC = ('utf-8', 'surrogateescape')


def hexs(s):
    return s.encode(*ENC).hex()


def main(path):
    out = []
    with tarfile.open(path, 'r:*', encoding=ENC[0], errors=ENC[1]) as tf:
        for m in tf:
            rec = {
                'name': hexs(m.name),
                'type': m.type.decode('latin-1'),
                'mode': m.mode,
                'uid': m.uid,
                'gid': m.gid,
                'uname': hexs(m.uname),
                'gname': hexs(m.gname),
                'size': m.size,
                'mtime': m.mtime,
                'linkname': hexs(m.linkname),
                'devmajor': m.devmajor,
                'devminor': m.devminor,
                'pax': {hexs(k): hexs(v) for k, v in m.pax_headers.items()},
                'sparse': [[o, n] for o, n in m.sparse] if m.sparse is not None else None,
                'offset_data': m.offset_data,
                'sha256': None,
            }
            if m.isreg():
                f = tf.extractfile(m)
                h = hashlib.sha256()
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
                rec['sha256'] = h.hexdigest()
            out.append(rec)
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main(sys.argv[1])
