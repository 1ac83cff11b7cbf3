#!/usr/bin/env bash
# The default example, end to end: build rootforge (with its Go guest agent), build the scratch
# sandbox image (examples/scratch.yaml: the agent as PID 1 and nothing else, ~3 MB), make a
# microVM kernel from Debian's cloud kernel package (apt-get download, from the Debian mirror),
# then boot the image under QEMU and check that its agent answers. No root, Docker or mount is
# needed for the image; apt installs what is missing (with sudo when not root).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out}

scripts/install-deps run   # the `run` group of scripts/system-packages.txt, with apt when missing
node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<15)) { console.error("quickstart: Node.js >= 20.15 is needed, this is "+process.version); process.exit(1) }'

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent

mkdir -p "$out"
./bin/rootforge build examples/scratch.yaml -o "$out/scratch.ext4"
./bin/rootforge kernel from-deb linux-image-cloud-amd64 -q
./bin/rootforge verify "$out/scratch.ext4" --boot
./bin/rootforge boot "$out/scratch.ext4" -- /usr/sbin/rootforge-agent --version
