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
    if [ -e "$WORK/node-n1" ]; then
        # Only what the fake node mounted, wherever its making stopped.
        on_node n1 sh -c '
            [ "$(findmnt -n -o SOURCE --mountpoint /dev | tail -n 1)" != fake-dev ] || umount -R /dev
            ! mountpoint -q /etc/shifter || umount /etc/shifter
            [ "$(findmnt -n -o SOURCE --mountpoint /usr/local | tail -n 1)" != fake-usr-local ] || umount -R /usr/local
            ! mountpoint -q "$1/hostdev" || umount -R "$1/hostdev"' - "$WORK"
    fi
    if [ -e "$WORK/site.conf" ]; then cat "$WORK/site.conf" > "$SITE_CONFIG"; fi
    rm -rf "$WORK"
    assert_no_leaks
}

# FAKE_NODE: the commands (bash, given the work directory) that make a fake GPU node of the mount
# namespace they run in: the driver in /usr/local/nvidia, the configuration with the gpu module in
# /etc/shifter, and a /dev of its own (the host's entries bound in, plus fake GPU nodes), so
# nothing is made in the host's /dev.
FAKE_NODE='
    set -e
    work=$1; shift
    mount -t tmpfs fake-usr-local /usr/local && mkdir /usr/local/nvidia
    mount --bind "$work/nvidia" /usr/local/nvidia
    mount --bind "$work/etc" /etc/shifter
    mkdir "$work/hostdev" && mount --rbind /dev "$work/hostdev"
    mount -t tmpfs -o mode=755 fake-dev /dev
    for entry in "$work"/hostdev/*; do
        name=${entry##*/}
        if [ -d "$entry" ] && [ ! -L "$entry" ]; then mkdir "/dev/$name"; mount --rbind "$entry" "/dev/$name"
        elif [ -L "$entry" ]; then cp -P "$entry" "/dev/$name"
        else touch "/dev/$name"; mount --bind "$entry" "/dev/$name"; fi
    done
    for n in 0 1 2 ctl; do mknod -m 666 "/dev/nvidia$n" c 1 3; done'

# in_gpu_node ENV... -- SHIFTER-ARGS...: runs shifter as the user in the fake GPU node: a mount
# namespace of its own around shifter, or with entryMode=userns, where the prolog builds the
# container, node n1's namespace (undone by teardown) around a job of its own on n1 (shifter_as).
in_gpu_node() {
    local env=()
    while [ "$1" != -- ]; do env+=("$1"); shift; done; shift
    if [ "$ENTRY_MODE" = userns ]; then
        if [ ! -e "$WORK/node-n1" ]; then
            # srun's submission, on this host, reads the site's configuration too.
            cp -p "$SITE_CONFIG" "$WORK/site.conf"
            echo "module_gpu_enabled=1" >> "$SITE_CONFIG"
            touch "$WORK/node-n1"
            on_node n1 bash -c "$FAKE_NODE" gpu-node "$WORK"
        fi
        (for assignment in "${env[@]}"; do export "${assignment?}"; done; shifter_as "$BED_USER" "$@")
        return
    fi
    unshare -m --propagation private bash -c "$FAKE_NODE"'
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
    skip_in_userns "the prolog hides the GPUs of the job (SLURM_JOB_GPUS) once, not each step's, and the bed's Slurm has no GPUs to give a job"
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
