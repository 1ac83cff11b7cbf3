# Alpine image targets (seeds 001 and 002), included by examples/Makefile or used directly:
#   make -f examples/alpine.mk rootfs-all      # images/{go,node,python}.ext4
#   make -f examples/alpine.mk alpine-balanced # images/alpine-balanced.ext4 (SBX profiles)
#   make -f examples/alpine.mk download        # the pinned Firecracker + kernel (kernels.lock.json)
# These reach Alpine's CDN (dl-cdn.alpinelinux.org): they need internet access. A lock beside a
# spec (examples/NAME.lock.json, from `rootforge lock examples/NAME.yaml`) pins what they install.
ALPINE_MK_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
ROOTFORGE ?= $(abspath $(ALPINE_MK_DIR)../bin/rootforge)
IMAGES ?= images
FIRECRACKER_VERSION ?=
KERNEL_VERSION ?=

.PHONY: rootfs-go rootfs-node rootfs-python rootfs-all alpine-minimal alpine-balanced alpine-heavy download

rootfs-go: $(IMAGES)/go.ext4
rootfs-node: $(IMAGES)/node.ext4
rootfs-python: $(IMAGES)/python.ext4
rootfs-all: rootfs-go rootfs-node rootfs-python

alpine-minimal: $(IMAGES)/alpine-minimal.ext4
alpine-balanced: $(IMAGES)/alpine-balanced.ext4
alpine-heavy: $(IMAGES)/alpine-heavy.ext4

$(IMAGES)/%.ext4: $(ALPINE_MK_DIR)%.yaml
	@mkdir -p $(IMAGES)
	$(ROOTFORGE) build $< -o $@

download:
	FIRECRACKER_VERSION=$(FIRECRACKER_VERSION) KERNEL_VERSION=$(KERNEL_VERSION) $(ROOTFORGE) kernel fetch
