#!/bin/bash
# The GPU module on a real GPU node, as root, in one short run: installs shifter setuid with a
# site configuration, makes a test user, and runs, as that user,
#   shifter --module=gpu nvidia-smi -L, the CUDA driver check, and a device-restriction check.
# Prints everything; exits non-zero if a check fails. DRIVER_DIR names the driver directory
# (lib64/ and bin/), /usr/local/nvidia by default.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=/tmp/shifter-gpu-check
DRIVER_DIR=${DRIVER_DIR:-/usr/local/nvidia}
rm -rf "$WORK"; mkdir -p "$WORK"/{bin,udiMount,loopMount}
install -m 4755 -o root -g root "$HERE/shifter" "$WORK/bin/shifter"
cp -r "$HERE/store" "$WORK/store"; chmod -R a+rX "$WORK"
mkdir -p /etc/shifter
[ -e /etc/shifter/udiRoot.conf ] && cp /etc/shifter/udiRoot.conf /etc/shifter/udiRoot.conf.before-gpu-check
cat > /etc/shifter/udiRoot.conf <<CONF
udiMount=$WORK/udiMount
loopMount=$WORK/loopMount
imagePath=$WORK/store
populateEtcDynamically=1
module_gpu_enabled=1
CONF
chmod 644 /etc/shifter/udiRoot.conf
id gpucheck >/dev/null 2>&1 || useradd -M -s /bin/sh gpucheck
image="id:$(cat "$HERE/image-id")"
failures=0
check() { # NAME COMMAND...
    local name=$1; shift
    echo "== $name"
    if "$@"; then echo "-- $name: ok"; else echo "-- $name: FAILED (status $?)"; failures=$((failures + 1)); fi
}
as_user() { (cd /tmp && setpriv --reuid=gpucheck --regid=gpucheck --clear-groups -- "$@"); }
echo "host: $(uname -srm); driver dir $DRIVER_DIR; devices: $(ls /dev/nvidia* 2>/dev/null | tr '\n' ' ')"
"$DRIVER_DIR/bin/nvidia-smi" -L 2>&1 | head -8
check "shifter --version" "$WORK/bin/shifter" --version
check "nvidia-smi -L in the container" as_user "$WORK/bin/shifter" -v --module=gpu --image="$image" nvidia-smi -L
check "CUDA driver in the container" as_user "$WORK/bin/shifter" --module=gpu --image="$image" /app/cudacheck
check "driver libraries come from the host" as_user "$WORK/bin/shifter" --module=gpu --image="$image" \
    sh -c 'ls /opt/udiImage/modules/gpu/lib64 | head -20; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"'
check "SLURM_STEP_GPUS=0 hides the other GPUs" env SLURM_STEP_GPUS=0 setpriv --reuid=gpucheck \
    --regid=gpucheck --clear-groups -- "$WORK/bin/shifter" --module=gpu --image="$image" \
    sh -c 'ls -l /dev/nvidia*; [ -c /dev/nvidia0 ] || exit 1; for d in /dev/nvidia[1-9]*; do if [ -c "$d" ]; then echo "$d is usable"; exit 1; fi; done; echo hidden-ok'
check "nothing left mounted" sh -c "! grep -q '$WORK' /proc/self/mountinfo"
if [ -e /etc/shifter/udiRoot.conf.before-gpu-check ]; then
    mv /etc/shifter/udiRoot.conf.before-gpu-check /etc/shifter/udiRoot.conf
else
    rm -f /etc/shifter/udiRoot.conf
fi
echo "failures: $failures"
exit $((failures > 0))
