#!/bin/sh
# Builds the demo unikernel (kernels/kernel.S with DEMO=1, and demo-start.S) into OUT, by
# default build/kernels/demo.virtio: a Solo5 virtio-like kernel that prints a banner and its
# command line on COM1. Needs binutils (as, ld). Deterministic: the same source and tools make
# the same bytes. `npm run build` and `prepare` run it; the registry tarball ships its output.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../build/kernels/demo.virtio"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The ABI1 note says virtio, version 1 (as Solo5's virtio kernels); the manifest declares "service".
as --64 --defsym TARGET=3 --defsym ABI_VERSION=1 --defsym MULTIBOOT=1 --defsym PVH=0 \
  --defsym NET=0 --defsym BLOCK=0 --defsym DEMO=1 -I "$here" -o "$work/kernel.o" "$here/kernel.S"
as --64 -o "$work/demo-start.o" "$here/demo-start.S"
ld -m elf_x86_64 -z max-page-size=0x1000 --no-warn-rwx-segments -T "$here/kernel.ld" \
  -o "$work/demo.virtio" "$work/kernel.o" "$work/demo-start.o"
# Into place by rename, from the output's own directory: a reader never sees half a kernel.
mkdir -p "$(dirname "$out")"
cp "$work/demo.virtio" "$out.tmp.$$"
mv "$out.tmp.$$" "$out"
