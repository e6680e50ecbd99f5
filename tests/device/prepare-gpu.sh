#!/bin/bash
# Assembles .device/gpu: what the GPU check needs on a machine with an NVIDIA GPU and no Swift:
# the release `shifter` (Swift runtime linked in), a small image (busybox + cudacheck with the C
# libraries it needs) as a squashfs store entry, and the check script. Run from the repository root
# after `make`.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=.device/gpu
rm -rf "$OUT"; mkdir -p "$OUT/store/tags" "$OUT/rootfs"/{bin,app,lib64,lib/x86_64-linux-gnu,etc,dev,proc,sys,tmp}
cp build/shifter "$OUT/shifter"
cp tests/device/run-gpu-check.sh "$OUT/"
root=$OUT/rootfs
cp /bin/busybox "$root/bin/busybox"
for applet in sh ls cat echo id head grep; do ln -s busybox "$root/bin/$applet"; done
gcc -O2 -o "$root/app/cudacheck" tests/device/cudacheck.c -ldl
for lib in $(ldd "$root/app/cudacheck" | grep -o '/[^ ]*'); do cp -L "$lib" "$root$lib"; done
printf 'NAME="Shifter GPU check"\n' > "$root/etc/os-release"
mksquashfs "$root" "$OUT/image.squashfs" -noappend -quiet -no-progress -comp zstd -all-root
hex=$(sha256sum "$OUT/image.squashfs" | cut -d' ' -f1)
mv "$OUT/image.squashfs" "$OUT/store/$hex.squashfs"
cat > "$OUT/store/$hex.meta.json" <<JSON
{"format": "squashfs", "digest": "sha256:$hex", "manifestDigest": "sha256:$hex", "layers": [],
 "env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "labels": {}, "userACL": [], "groupACL": [],
 "source": "custom:gpucheck:latest", "created": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
JSON
echo "sha256:$hex" > "$OUT/image-id"
rm -rf "$root"
du -sh "$OUT"
