#!/bin/sh
# Runs a command with /dev/kvm in one of the states the suite must pass in, inside a private mount
# namespace: nothing changes for any other process on the machine. Needs root (CI runs as root).
#   kvm-mode.sh unopenable CMD...  /dev/kvm does not open (a host without usable KVM)
#   kvm-mode.sh unusable CMD...    /dev/kvm opens but QEMU cannot use it: /dev/null is bound on
#                                  it, so KVM's ioctls fail at once
#   kvm-mode.sh pvm CMD...         /dev/kvm opens and qemu-system-x86_64 is the stand-in for QEMU
#                                  on a paravirtual kvm-pvm host (test/standins/qemu/): KVM runs
#                                  real-mode code, then stops the guest at its first
#                                  protected-mode iret
#   kvm-mode.sh pvm-hang CMD...    the same, but KVM guests never make progress and say nothing
# Under pvm and pvm-hang an existing /dev/kvm stays as it is (QEMU's KVM is played; Solo5's hvt
# tender works on kvm-pvm, so it may use the host's).
# On a host with no /dev/kvm there is no mount point for a stand-in device: /dev is rebuilt on a
# tmpfs from its original entries, plus a kvm entry on which /dev/null is bound.
set -eu
mode=${1:-}
case "$mode" in
unopenable | unusable) shift ;;
pvm | pvm-hang)
  shift
  # The stand-in first on PATH (its directory holds nothing else); it finds the real QEMU further
  # down.
  standin=$(cd "$(dirname "$0")/../standins/qemu" && pwd -P)
  PATH=$standin:$PATH
  QEMU_STANDIN=pvm
  if [ "$mode" = pvm-hang ]; then QEMU_STANDIN=hang; fi
  export PATH QEMU_STANDIN
  ;;
*)
  echo "usage: $0 unopenable|unusable|pvm|pvm-hang CMD..." >&2
  exit 2
  ;;
esac
[ "$#" -gt 0 ] || { echo "$0: no command given" >&2; exit 2; }

exec unshare --mount --propagation private sh -eu -c '
mode=$1
shift
mount --make-rprivate /
if [ "$mode" = unopenable ]; then
  if [ -e /dev/kvm ]; then
    mount --bind /dev/null /dev/kvm
    mount -o remount,bind,nodev /dev/kvm
  fi
else
  if [ ! -e /dev/kvm ]; then
    real=$(mktemp -d)
    mount --rbind /dev "$real"
    mount -t tmpfs -o mode=755 tmpfs /dev
    for entry in "$real"/* "$real"/.[!.]*; do
      [ -e "$entry" ] || [ -L "$entry" ] || continue
      name=${entry##*/}
      if [ -L "$entry" ]; then
        cp -P "$entry" "/dev/$name"
      elif [ -d "$entry" ]; then
        mkdir "/dev/$name"
        mount --rbind "$entry" "/dev/$name"
      else
        touch "/dev/$name"
        mount --bind "$entry" "/dev/$name"
      fi
    done
    # The entries keep their own mounts; the temporary directory goes.
    umount -l "$real"
    rmdir "$real"
    touch /dev/kvm
    mount --bind /dev/null /dev/kvm
  elif [ "$mode" = unusable ]; then
    mount --bind /dev/null /dev/kvm
  fi
fi
exec "$@"
' kvm-mode "$mode" "$@"
