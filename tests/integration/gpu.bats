#!/usr/bin/env bats
# The gpu module with a stand-in driver: the host's driver libraries and tools appear in the
# container, found first on the search paths, and GPUs Slurm did not give the job are hidden.
# Each test runs in a private mount namespace where /usr/local holds a fake driver, /dev has fake
# GPU nodes (the host's /dev is left alone), and /etc/shifter holds the bed's configuration plus the gpu module.
# The real driver is checked on a GPU machine by tests/device/run-gpu-check.sh.

load helpers

setup() {
    WORK=$(mktemp -d /tmp/shifter-gpu.XXXXXX)
    mkdir -p "$WORK/nvidia/lib64" "$WORK/nvidia/bin" "$WORK/etc"
    gcc -shared -fPIC -o "$WORK/nvidia/lib64/libcuda.so.535.1" "$SHIFTER_SOURCE/tests/device/fakecuda.c"
    ln -s libcuda.so.535.1 "$WORK/nvidia/lib64/libcuda.so.1"
    printf '#!/bin/sh\necho "GPU 0: Fake GPU (UUID: GPU-fake)"\n' > "$WORK/nvidia/bin/nvidia-smi"
    chmod 755 "$WORK/nvidia/bin/nvidia-smi"
    cp "$SITE_CONFIG" "$WORK/etc/udiRoot.conf"
    echo "module_gpu_enabled=1" >> "$WORK/etc/udiRoot.conf"
    chmod -R a+rX "$WORK"
}

teardown() {
    rm -rf "$WORK"
    assert_no_leaks
}

# in_gpu_node ENV... -- SHIFTER-ARGS...: runs shifter as the user in the fake GPU node.
in_gpu_node() {
    local env=()
    while [ "$1" != -- ]; do env+=("$1"); shift; done; shift
    unshare -m --propagation private bash -c '
        set -e
        work=$1; shift
        mount -t tmpfs fake-usr-local /usr/local && mkdir /usr/local/nvidia
        mount --bind "$work/nvidia" /usr/local/nvidia
        mount --bind "$work/etc" /etc/shifter
        # A /dev of its own (the host entries bound in, plus fake GPU nodes), so nothing is
        # created in the host /dev.
        mkdir "$work/hostdev" && mount --rbind /dev "$work/hostdev"
        mount -t tmpfs -o mode=755 fake-dev /dev
        for entry in "$work"/hostdev/*; do
            name=${entry##*/}
            if [ -d "$entry" ] && [ ! -L "$entry" ]; then mkdir "/dev/$name"; mount --rbind "$entry" "/dev/$name"
            elif [ -L "$entry" ]; then cp -P "$entry" "/dev/$name"
            else touch "/dev/$name"; mount --bind "$entry" "/dev/$name"; fi
        done
        for n in 0 1 2 ctl; do mknod -m 666 "/dev/nvidia$n" c 1 3; done
        cd /tmp
        exec "$@"' gpu-node "$WORK" env "${env[@]}" setpriv --reuid="$(id -u "$BED_USER")" --regid="$(id -g "$BED_USER")" \
            --init-groups -- "$SHIFTER" "$@"
}

@test "the gpu module brings the host's driver libraries and nvidia-smi into the container" {
    run in_gpu_node -- --module=gpu --image="$IMAGE_BUSYBOX" sh -c \
        'nvidia-smi; ls /opt/udiImage/modules/gpu/lib64; echo "$LD_LIBRARY_PATH"; cat /opt/udiImage/modules/gpu/lib64/libcuda.so.1 | head -c 4 | od -c | head -1'
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "GPU 0: Fake GPU (UUID: GPU-fake)" ]
    [ "${lines[1]}" = "libcuda.so.1" ]
    [ "${lines[2]}" = "libcuda.so.535.1" ]
    [[ "${lines[3]}" == /opt/udiImage/modules/gpu/lib64* ]]
    [[ "${lines[4]}" == *"177   E   L   F"* ]]
}

@test "GPUs Slurm did not give the step are hidden, the others and nvidiactl stay" {
    run in_gpu_node SLURM_STEP_GPUS=1 -- --module=gpu --image="$IMAGE_BUSYBOX" sh -c \
        'for d in /dev/nvidia0 /dev/nvidia1 /dev/nvidia2 /dev/nvidiactl; do if [ -c $d ]; then echo "$d device"; else echo "$d hidden"; fi; done'
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '/dev/nvidia0 hidden\n/dev/nvidia1 device\n/dev/nvidia2 hidden\n/dev/nvidiactl device')" ]
}

@test "without the gpu module nothing of the driver is there" {
    run in_gpu_node -- --image="$IMAGE_BUSYBOX" sh -c 'ls /opt/udiImage/modules/gpu 2>&1; echo "${LD_LIBRARY_PATH:-unset}"'
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == *"No such file or directory"* ]]
    [ "${lines[1]}" = unset ]
}

@test "a node without a driver refuses the gpu module with the reason" {
    rm -f "$WORK/nvidia/lib64/"*
    run in_gpu_node -- --module=gpu --image="$IMAGE_BUSYBOX" true
    [ "$status" -eq 1 ]
    [[ "$output" == "shifter: module gpu: no NVIDIA driver library (libcuda.so.1) in"*"is the driver installed on this node?" ]]
}
