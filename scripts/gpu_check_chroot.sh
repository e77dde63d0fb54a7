#!/usr/bin/env bash
# scripts/gpu_check_chroot.sh: tries the GPU check kit here, on the CPU, in a bare Debian 12 chroot
# that holds what a lent GPU machine holds and nothing of this machine's -dev packages: a compiler,
# CMake, ninja, python3 with PyTorch 2.x (the cached wheel of scripts/libtorch_cuda.sh), the CUDA
# toolkit (/usr/local/cuda, mounted read-only), the project's files and the bundle of
# scripts/gpu_bundle.sh. scripts/gpu_check.sh then builds, runs the suites (their [cuda] cases
# report themselves skipped) and runs its benchmark programs on the tiny model.
# Needs root (debootstrap, chroot, bind mounts). The chroot is kept in $SAM_CHROOT (default
# /var/tmp/sam-chroot) and reused; the report lands in $OUT (default runs/gpu_check_chroot).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ch=${SAM_CHROOT:-/var/tmp/sam-chroot}
out=${OUT:-$root/runs/gpu_check_chroot}
cuda=${CUDA_HOME:-/usr/local/cuda}
[ "$(id -u)" = 0 ] || { echo "gpu_check_chroot: needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
torch_site=$(dirname "$("$root/scripts/libtorch_cuda.sh" --print)")
if [ ! -f "$ch/.complete" ]; then
  rm -rf "$ch"
  echo "gpu_check_chroot: debootstrap bookworm into $ch"
  debootstrap --variant=minbase --include=g++,make,cmake,ninja-build,python3,binutils,procps,file \
    bookworm "$ch" http://deb.debian.org/debian >/dev/null
  touch "$ch/.complete"
fi
cleanup() {
  for m in work/sam/gpu_check_out opt/torch usr/local/cuda dev proc; do
    mountpoint -q "$ch/$m" && umount -l "$ch/$m" || true
  done
}
trap cleanup EXIT
mkdir -p "$ch/proc" "$ch/dev" "$ch/usr/local/cuda" "$ch/opt/torch" "$ch/work/sam/gpu_check_out" "$out"
mount -t proc proc "$ch/proc"
mount --bind /dev "$ch/dev"
mount --bind -o ro "$(readlink -f "$cuda")" "$ch/usr/local/cuda"
mount --bind -o ro "$torch_site" "$ch/opt/torch"
mount --bind "$out" "$ch/work/sam/gpu_check_out"
echo /usr/local/cuda/lib64 >"$ch/etc/ld.so.conf.d/cuda.conf"
chroot "$ch" ldconfig
# The project as the device tool copies it: tracked and untracked-not-ignored files.
rm -rf "$ch/work/sam/src"
mkdir -p "$ch/work/sam/src"
(cd "$root" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$ch/work/sam/src"
"$root/scripts/gpu_bundle.sh" "$ch/work/sam/src/gpu_bundle"
echo "gpu_check_chroot: running scripts/gpu_check.sh in the chroot"
chroot "$ch" /usr/bin/env -i PATH=/usr/local/cuda/bin:/usr/bin:/bin HOME=/root \
  PYTHONPATH=/opt/torch:/opt/torch/pydeps OUT=/work/sam/gpu_check_out \
  /bin/bash -c 'cd /work/sam/src && scripts/gpu_check.sh --bundle gpu_bundle'
