#!/bin/sh
# Runs a command with /dev/kvm in one of the states the suite must pass in, inside a private mount
# namespace: nothing changes for any other process on the machine. Needs root (CI runs as root).
#   kvm-mode.sh unopenable CMD...  /dev/kvm does not open (a host without usable KVM)
#   kvm-mode.sh unusable CMD...    /dev/kvm opens but QEMU cannot use it (as on a kvm-pvm host):
#                                  /dev/null is bound on it, so KVM's ioctls fail
# On a host with no /dev/kvm there is no mount point for `unusable`: /dev is rebuilt on a tmpfs
# from its original entries, plus a kvm entry.
set -eu
mode=${1:-}
case "$mode" in
unopenable | unusable) shift ;;
*)
  echo "usage: $0 unopenable|unusable CMD..." >&2
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
  fi
  mount --bind /dev/null /dev/kvm
fi
exec "$@"
' kvm-mode "$mode" "$@"
