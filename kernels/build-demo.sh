#!/bin/sh
# Builds the demo unikernel (kernels/kernel.S with DEMO=1, demo-start.S, demo-*.c) into OUT,
# by default build/kernels/demo.virtio: a Solo5 virtio-like kernel that prints a banner and its
# command line on COM1, then answers ARP, ping and HTTP (TCP port 8080) on its virtio-net NIC.
# Needs binutils (as, ld) and gcc. Deterministic: the same source and tools make the same bytes.
# `npm run build` and `prepare` run it; the registry tarball ships its output.
set -eu
for tool in as ld gcc; do
  command -v "$tool" >/dev/null || {
    echo "kernels/build-demo.sh: $tool is missing: building the demo kernel needs binutils and gcc (Debian: apt-get install binutils gcc, or npm run setup)" >&2
    exit 1
  }
done
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../build/kernels/demo.virtio"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The ABI1 note says virtio, version 1 (as Solo5's virtio kernels); the manifest declares a net
# device, "service", so local.Vm gives the VM its NIC.
as --64 --defsym TARGET=3 --defsym ABI_VERSION=1 --defsym MULTIBOOT=1 --defsym PVH=0 \
  --defsym NET=1 --defsym BLOCK=0 --defsym DEMO=1 -I "$here" -o "$work/kernel.o" "$here/kernel.S"
as --64 -o "$work/demo-start.o" "$here/demo-start.S"
# Freestanding: no libc, no red zone (interrupts use the stack), no SSE (never enabled), no
# loops turned into memcpy calls, nothing that names the build (-fno-ident: no .comment).
for c in lib virtio net; do
  gcc -std=c11 -O2 -Wall -Wextra -ffreestanding -fno-builtin -nostdlib -fno-pic -fno-pie \
    -mno-red-zone -mgeneral-regs-only -fno-stack-protector -fno-asynchronous-unwind-tables \
    -fno-tree-loop-distribute-patterns -fcf-protection=none -fno-ident \
    -c -o "$work/demo-$c.o" "$here/demo-$c.c"
done
ld -m elf_x86_64 -z max-page-size=0x1000 -z noexecstack --no-warn-rwx-segments -T "$here/kernel.ld" \
  -o "$work/demo.virtio" "$work/kernel.o" "$work/demo-start.o" \
  "$work/demo-lib.o" "$work/demo-virtio.o" "$work/demo-net.o"
# Into place by rename, from the output's own directory: a reader never sees half a kernel.
mkdir -p "$(dirname "$out")"
cp "$work/demo.virtio" "$out.tmp.$$"
mv "$out.tmp.$$" "$out"
