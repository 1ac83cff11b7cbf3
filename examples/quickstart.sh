#!/usr/bin/env bash
# The default example, end to end: build rootforge (with its Go guest agent), build the scratch
# sandbox image (examples/scratch.yaml: the agent as PID 1 and nothing else, ~3 MB), make a
# microVM kernel from Debian's cloud kernel package (apt-get download, from the Debian mirror),
# then boot the image under QEMU and check that its agent answers. No root, Docker or mount is
# needed for the image; apt installs what is missing (with sudo when not root).
#
#   examples/quickstart.sh [--arch amd64|arm64] [OUTDIR]
#
# --arch arm64 builds the same example for linux/arm64, makes the kernel from
# linux-image-cloud-arm64 (fetched for arm64 whatever this host is) and boots it with
# qemu-system-aarch64 -M virt (emulated with TCG on an x86_64 host: expect 10-30 s to boot).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=
while [ $# -gt 0 ]; do
  case $1 in
    --arch) arch=${2:?--arch needs amd64 or arm64}; shift 2 ;;
    --arch=*) arch=${1#--arch=}; shift ;;
    *) break ;;
  esac
done
out=${1:-out}
if [ -z "$arch" ]; then
  case $(uname -m) in aarch64 | arm64) arch=arm64 ;; *) arch=amd64 ;; esac
fi
case $arch in
  amd64) qemu=qemu-system-x86_64 qemu_pkg=qemu-system-x86 timeout=90 ;;
  arm64) qemu=qemu-system-aarch64 qemu_pkg=qemu-system-arm timeout=300 ;;
  *) echo "quickstart: --arch must be amd64 or arm64 (not $arch)" >&2; exit 2 ;;
esac

# the `run` group of scripts/system-packages.txt (plus `arm64`: qemu-system-arm), with apt when missing
if [ "$arch" = arm64 ]; then scripts/install-deps arm64; else scripts/install-deps run; fi
node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<15)) { console.error("quickstart: Node.js >= 20.15 is needed, this is "+process.version); process.exit(1) }'

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent

mkdir -p "$out"
img=$out/scratch.ext4
[ "$arch" = amd64 ] || img=$out/scratch-$arch.ext4
./bin/rootforge build examples/scratch.yaml --platform "linux/$arch" -o "$img"
./bin/rootforge kernel from-deb "linux-image-cloud-$arch" -q
./bin/rootforge verify "$img" --boot --timeout "$timeout"
./bin/rootforge boot "$img" --timeout "$timeout" -- /usr/sbin/rootforge-agent --version
