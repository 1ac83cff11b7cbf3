#!/usr/bin/env bash
# The default example: build rootforge, make a Debian bookworm minbase root filesystem tar with
# mmdebstrap (from the Debian mirror), turn it into an ext4 image without root, Docker or a
# mount, and check the image with e2fsck. Output goes to ./out (or the directory given).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out}

missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v e2fsck >/dev/null || missing+=(e2fsprogs)
if ((${#missing[@]})); then
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  echo "quickstart: installing ${missing[*]}" >&2
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}"
fi
node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<15)) { console.error("quickstart: Node.js >= 20.15 is needed, this is "+process.version); process.exit(1) }'

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent

mkdir -p "$out"
if [ ! -f "$out/minbase.tar" ]; then
  mmdebstrap --variant=minbase --format=tar --quiet bookworm "$out/minbase.tar.tmp" http://deb.debian.org/debian
  mv "$out/minbase.tar.tmp" "$out/minbase.tar"
fi
time ./bin/rootforge convert "tar:$out/minbase.tar" -o "$out/minbase.ext4"
e2fsck -fn "$out/minbase.ext4"
./bin/rootforge inspect "$out/minbase.ext4"
./bin/rootforge cat "$out/minbase.ext4" /etc/os-release
