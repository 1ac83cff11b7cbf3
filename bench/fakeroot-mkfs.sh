#!/bin/bash
# Pipeline A's fakeroot half, run by the benchmark as `fakeroot -- bash fakeroot-mkfs.sh IN STAGING IMG`.
# Extraction and mke2fs -d must share ONE fakeroot session: the owners, modes, device nodes and
# xattrs tar "sets" live only in faked's memory (a -s/-i state file would drop the xattrs).
# Sizing as the seed pipelines do (and bench/image.ts overallocBytes): du -sb × 1.5 + 64 MiB,
# rounded up to a MiB; resize2fs -M shrinks it afterwards, outside fakeroot.
# Prints "<du -sb bytes> <image MiB>" for the report.
set -euo pipefail
in=$1
staging=$2
img=$3
tar -xpf "$in" --xattrs --xattrs-include='*' -C "$staging"
bytes=$(du -sb "$staging" | cut -f1)
mib=$(( (bytes * 3 / 2 + 64 * 1048576 + 1048575) / 1048576 ))
mke2fs -q -t ext4 -d "$staging" "$img" "${mib}M"
echo "$bytes $mib"
