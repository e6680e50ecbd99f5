#!/usr/bin/env bats
# Pyxis-style options (plugstack pyxis_compat=1, which the bed sets): job scripts written for
# Pyxis run unchanged, each task inside the container without `shifter` in front of it.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    U=$BED_USER
    OUT=$(mktemp -d /tmp/shifter-pyxis.XXXXXX)
    chmod 777 "$OUT"
    # Pyxis names a registry with '#': REGISTRY#IMAGE:TAG.
    PYXIS_IMAGE=${IMAGE_BUSYBOX/\//#}
}

teardown() {
    rm -rf "$OUT"
    rm -f "$(getent passwd "$U" | cut -d: -f6)/pyxis-home-test"
    [ -z "${WORK:-}" ] || gateway_for_the_bed_down
}

# gateway_for_the_bed_up: starts a gateway that pulls into the bed's own image store and points
# the site configuration at it (the bed imports in process otherwise); notes what the store holds.
gateway_for_the_bed_up() {
    WORK=$(mktemp -d /tmp/shifter-pyxis-gw.XXXXXX)
    PORT=$(free_port)
    export WORK PORT
    write_gateway_config "$WORK/imagegw.conf" "$PORT" "$IMAGE_STORE"
    find "$IMAGE_STORE" | sort >"$WORK/store-before"
    cp -p "$SITE_CONFIG" "$WORK/udiRoot.conf.saved"
    start_gateway "$PORT"
    sed -i "s|^imageGateway=local\$|imageGateway=http://127.0.0.1:$PORT|" "$SITE_CONFIG"
    grep -q "^imageGateway=http://127.0.0.1:$PORT\$" "$SITE_CONFIG"
}

# gateway_for_the_bed_down: puts the site configuration back, stops the gateway and removes what
# it added to the store.
gateway_for_the_bed_down() {
    [ -f "$WORK/udiRoot.conf.saved" ] && cp -p "$WORK/udiRoot.conf.saved" "$SITE_CONFIG"
    stop_gateway
    find "$IMAGE_STORE" | sort | comm -13 "$WORK/store-before" - | sort -r | while read -r added; do
        rm -rf "$added"
    done
    rm -rf "$WORK"
    unset WORK
}

@test "pyxis: a Pyxis job script runs unchanged: image, mounts, workdir, env on two nodes" {
    mkdir "$OUT/data"
    echo "from the host" >"$OUT/data/x"
    cat >"$OUT/job.sh" <<SCRIPT
#!/bin/bash
#SBATCH -N2
#SBATCH -o $OUT/out
export PATH=/opt/host/bin:/usr/bin:/bin HOST_ONLY=kept
srun -N2 --ntasks-per-node=1 --container-image=$PYXIS_IMAGE --container-mounts=$OUT/data:/data:ro --container-workdir=/data \
    sh -c 'echo "\$SLURMD_NODENAME \$(head -1 /etc/os-release) pwd=\$(pwd) x=\$(cat x) uid=\$(id -u) path=\$PATH host=\$HOST_ONLY"; touch /data/y 2>/dev/null || echo "\$SLURMD_NODENAME read-only"'
srun -N1 --container-image=$PYXIS_IMAGE --container-env=PATH sh -c 'echo "env path=\$PATH"'
srun -N1 sh -c 'echo "host \$(head -1 /etc/os-release)"'
SCRIPT
    job=$(submit "$U" "$OUT/job.sh")
    wait_job "$job"
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    local uid image_path
    uid=$(id -u "$U")
    image_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    for node in n1 n2; do
        # The image's files, the mount read-only, the working directory, the user's uid, the
        # image's PATH over the host's, and the host's other variables.
        grep -qxF "$node NAME=\"Shifter test busybox\" pwd=/data x=from the host uid=$uid path=$image_path host=kept" "$OUT/out"
        grep -qxF "$node read-only" "$OUT/out"
    done
    # --container-env: the host's value wins over the image's.
    grep -qxF "env path=/opt/host/bin:/usr/bin:/bin" "$OUT/out"
    # A step without the options runs on the host.
    grep -q '^host PRETTY_NAME=\|^host NAME=' "$OUT/out"
    ! grep -q '^host NAME="Shifter test busybox"' "$OUT/out" || false
    assert_nodes_clean "$job"
}

@test "pyxis: sbatch --container-image runs the batch script itself in the container" {
    printf '#!/bin/sh\necho "script $(head -1 /etc/os-release) uid=$(id -u) pwd=$(pwd)"\n' >"$OUT/job.sh"
    job=$(cd "$OUT" && submit "$U" -o "$OUT/out" --container-image="$PYXIS_IMAGE" "$OUT/job.sh")
    wait_job "$job"
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    grep -qxF "script NAME=\"Shifter test busybox\" uid=$(id -u "$U") pwd=$OUT" "$OUT/out"
    assert_nodes_clean "$job"
}

@test "pyxis: srun --container-image from a login node; --container-mount-home mounts the host's home where no site filesystem brings it" {
    local home
    home=$(getent passwd "$U" | cut -d: -f6)
    echo "in the home directory" >"$home/pyxis-home-test"
    chown "$U" "$home/pyxis-home-test"
    # The bed's site filesystems (siteFs) bring /site and /tmp, not /home.
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" sh -c "head -1 /etc/os-release; test -e '$home/pyxis-home-test' && echo there || echo absent"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-2]}" = 'NAME="Shifter test busybox"' ]
    [ "${lines[-1]}" = absent ]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --no-container-mount-home sh -c "test -e '$home/pyxis-home-test' && echo there || echo absent"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = absent ]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mount-home sh -c "cat '$home/pyxis-home-test'"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "in the home directory" ]
    # A site filesystem's host directory (/site in the container) mounts like any other.
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts="$BED_DIR/site:/from-site:ro" cat /from-site/README
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "a file from the site" ]
}

@test "pyxis: a mount source is the host's path, as in Pyxis, opened with the user's rights; another user's is refused" {
    # /home and /var/tmp are on no site filesystem of the bed: Shifter's --volume would look them
    # up in the image.
    local top=/var/tmp/shifter-pyxis-mounts
    rm -rf "$top" && mkdir -p "$top/mine" "$top/theirs"
    echo "from the host" >"$top/mine/f"
    chown -R "$U" "$top/mine"
    chown "$BED_USER2" "$top/theirs" && chmod 700 "$top/theirs"
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts="$top/mine:/test-mnt,/home:/test-home:ro" \
        sh -c 'cat /test-mnt/f; ls /test-home'
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "from the host" ]
    # The host's /home, not the image's (which has none of the bed's users).
    [[ "$output" == *"$U"* ]]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts="$top/theirs:/test-mnt" true
    echo "$output"
    rm -rf "$top"
    [ "$status" -ne 0 ]
    [[ "$output" == *"user $U may not open source $top/theirs: Permission denied"* ]]
}

@test "pyxis: single files and relative paths mount as in Pyxis; FIFOs and another user's file are refused" {
    local top=/var/tmp/shifter-pyxis-files
    rm -rf "$top" && mkdir -p "$top/work/data" "$top/theirs"
    echo "key: value" >"$top/work/config.yaml"
    echo "in data" >"$top/work/data/x"
    mkfifo "$top/work/fifo"
    chown -R "$U" "$top/work"
    echo "secret" >"$top/theirs/private" && chown -R "$BED_USER2" "$top/theirs" && chmod 600 "$top/theirs/private"
    chmod 755 "$top/theirs"
    # A file onto a path the image lacks (created), a file over the image's own file, a relative
    # directory, and the short form of a relative file (its target is /config.yaml).
    run bash -c "cd '$top/work' && runuser -u '$U' -- env SLURM_CONF='$SLURM_CONF' PATH='$SHIFTER_PREFIX/bin:/usr/bin:/bin' \
        srun -N1 --container-image='$PYXIS_IMAGE' \
        --container-mounts=./config.yaml:/app/config.yaml:ro,./config.yaml:/opt/suid/id,./data:/data,./config.yaml \
        sh -c 'cat /app/config.yaml; cat /opt/suid/id; cat /data/x; cat /config.yaml; (echo more >>/app/config.yaml) 2>/dev/null || echo read-only'"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-5]}" = "key: value" ]
    [ "${lines[-4]}" = "key: value" ]
    [ "${lines[-3]}" = "in data" ]
    [ "${lines[-2]}" = "key: value" ]
    [ "${lines[-1]}" = read-only ]
    # Another user's private file: the user's own answer.
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts="$top/theirs/private:/p" cat /p
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"user $U may not open source $top/theirs/private: Permission denied"* ]]
    # refused MOUNTS TEXT: srun with --container-mounts=MOUNTS fails, saying TEXT.
    refused() {
        run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts="$1" true
        echo "$output"
        [ "$status" -ne 0 ] && [[ "$output" == *"$2"* ]]
    }
    # A FIFO is neither a directory, a file nor a device node; its open does not wait.
    refused "$top/work/fifo:/fifo" "source $top/work/fifo is neither a directory, a regular file nor a device node (a FIFO or socket); only those are mounted"
    # A file onto one of the image's directories, and a directory onto one of its files.
    refused "$top/work/config.yaml:/bin" "target /bin exists in the image and is not a file, as the source is"
    refused "$top/work/data:/opt/suid/id" "target /opt/suid/id exists in the image and is not a directory, as the source is"
    # A target that is a symlink in the image (/bin/true -> busybox) is not followed.
    refused "$top/work/config.yaml:/bin/true" "/bin/true"
    rm -rf "$top"
    assert_nodes_clean
}

@test "pyxis: paths with spaces mount as in Pyxis, in the source, the target or both; shifter's --volume takes them too" {
    local top="/var/tmp/shifter pyxis spaces"
    rm -rf "$top" && mkdir -p "$top/my dir"
    echo hello >"$top/my dir/file.txt"
    chown -R "$U" "$top"
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts="$top/my dir:/mnt/test" cat /mnt/test/file.txt
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = hello ]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts="$top/my dir:/mnt/my mount:ro" \
        sh -c 'cat "/mnt/my mount/file.txt"; grep -cF " /mnt/my\\040mount " /proc/self/mountinfo'
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-2]}" = hello ]
    [ "${lines[-1]}" = 1 ]
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" "--volume=$top/my dir:/data/my files:host" cat "/data/my files/file.txt"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = hello ]
    # A tab is no space: refused at submission, with the path and the reason.
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts="$(printf '%s/my\tdir:/x' "$top")" true
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"contains \"\\t\"; only letters, digits, spaces and _ . / + - are allowed"* ]]
    rm -rf "$top"
    assert_nodes_clean
}

@test "pyxis: a device node of the node's /dev mounts and works as on the host; one elsewhere, or one the user cannot open, is refused" {
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts=/dev/null:/null,/dev/zero:/data/zero \
        sh -c '[ -c /null ] && echo null: char; echo x > /null && echo null: written; head -c 3 /data/zero | od -An -tx1'
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-3]}" = "null: char" ]
    [ "${lines[-2]}" = "null: written" ]
    [ "$(echo ${lines[-1]})" = "00 00 00" ]
    # A node the user may open, outside the node's /dev filesystem (a user's FUSE filesystem could
    # serve any device there): a pseudo-terminal of the user's (devpts), held open meanwhile; a pipe
    # brings its name.
    mkfifo "$OUT/tty"
    local tty_fd holder tty
    exec {tty_fd}<>"$OUT/tty"
    runuser -u "$U" -- python3 -c 'import os, pty, time; m, s = pty.openpty(); print(os.ttyname(s), flush=True); time.sleep(120)' \
        >"$OUT/tty" &
    holder=$!
    read -r -t 30 -u "$tty_fd" tty || { kill "$holder"; false; }
    exec {tty_fd}<&-
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts="$tty:/tty" true
    kill "$holder"
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"\"$tty:/tty:host\": source $tty is a device node outside the node's /dev; only the node's own device nodes are mounted"* ]]
    # A node the user may not open on the host (mode 0600, root's) is not theirs in the container.
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts=/dev/loop-control:/lc true
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"may not open source /dev/loop-control: Permission denied"* ]]
    # Over the image's own directory: a device node goes over a file.
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts=/dev/null:/bin true
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"target /bin exists in the image and is not a file, which a device node is mounted over"* ]]
    assert_nodes_clean
}

@test "pyxis: tmpfs:DST is a tmpfs of the user's, of the size asked or the site's; over the site limit it is refused" {
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts=tmpfs:/scratch,tmpfs:/small:size=4M \
        sh -c 'grep -E " /(scratch|small) " /proc/self/mounts | cut -d" " -f1-4; stat -c "%U %a" /scratch; echo x >/scratch/f && cat /scratch/f
               dd if=/dev/zero of=/small/big bs=1M count=8 2>/dev/null || echo small is full'
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"shifter-tmpfs /scratch tmpfs rw,nosuid,nodev"* ]]
    [[ "$output" == *"shifter-tmpfs /small tmpfs rw,nosuid,nodev"* ]]
    [[ "$output" == *"$U 755"* ]]
    [ "${lines[-2]}" = x ]
    [ "${lines[-1]}" = "small is full" ]
    # The bed's tmpfsVolumeSizeLimit is the default, 1G, for all of a request's tmpfs volumes.
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts=tmpfs:/a:size=2G true
    [ "$status" -ne 0 ]
    [[ "$output" == *"tmpfs size 2G is over the site limit of 1G (tmpfsVolumeSizeLimit)"* ]]
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" "--volume=/a:/a:tmpfs=512M;/b:/b:tmpfs=513M" true
    [ "$status" -ne 0 ]
    [[ "$output" == *"the tmpfs volumes of this request add up to more than the site limit of 1G"* ]]
    assert_nodes_clean
}

@test "pyxis: umount:DST leaves a site mount out of the container; only site mounts may be left out" {
    local marker=/tmp/shifter-pyxis-umount.$$
    touch "$marker"
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts=umount:/site,umount:/tmp \
        sh -c "test -e /site/README && echo site || echo no site; test -e $marker && echo host tmp || echo image tmp"
    rm -f "$marker"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-2]}" = "no site" ]
    [ "${lines[-1]}" = "image tmp" ]
    # Without it, both are there.
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" cat /site/README
    [ "${lines[-1]}" = "a file from the site" ]
    # A device, a module's file or the image's own directory is no site mount.
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts=umount:/dev/shm true
    [ "$status" -ne 0 ]
    [[ "$output" == *"target may not be under /dev"* ]]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts=umount:/opt/udiImage/modules true
    [ "$status" -ne 0 ]
    [[ "$output" == *"target may not be under /opt/udiImage"* ]]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts=umount:/bin true
    [ "$status" -ne 0 ]
    [[ "$output" == *"umount leaves out a site mount, and /bin is none (this site's: /tmp, /site)"* ]]
}

@test "pyxis: LD_LIBRARY_PATH and TMPDIR reach the task, with and without --container-env" {
    run as_user "$U" env LD_LIBRARY_PATH=/opt/host/lib TMPDIR=/tmp/u-tmp srun -N1 --container-image="$PYXIS_IMAGE" \
        sh -c 'echo "ld=$LD_LIBRARY_PATH tmp=$TMPDIR"'
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "ld=/opt/host/lib tmp=/tmp/u-tmp" ]
    run as_user "$U" env LD_LIBRARY_PATH=/opt/host/lib srun -N1 --container-image="$PYXIS_IMAGE" --container-env=LD_LIBRARY_PATH \
        sh -c 'echo "ld=$LD_LIBRARY_PATH"'
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "ld=/opt/host/lib" ]
}

@test "pyxis: PYXIS_CONTAINER_* stand for the options in srun, sbatch and each task, the command line winning; a second user's directory stays refused" {
    # srun from a login node, with the variables alone.
    run as_user "$U" env PYXIS_CONTAINER_IMAGE="$PYXIS_IMAGE" PYXIS_CONTAINER_WORKDIR=/etc srun -N1 sh -c 'head -1 /etc/os-release; pwd'
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-2]}" = 'NAME="Shifter test busybox"' ]
    [ "${lines[-1]}" = /etc ]
    # An option on the command line wins over its variable.
    run as_user "$U" env PYXIS_CONTAINER_IMAGE="$PYXIS_IMAGE" PYXIS_CONTAINER_WORKDIR=/etc srun -N1 --container-workdir=/bin pwd
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = /bin ]
    # An empty variable is unset: the task runs on the host.
    run as_user "$U" env PYXIS_CONTAINER_IMAGE= srun -N1 head -1 /etc/os-release
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" != 'NAME="Shifter test busybox"' ]
    # sbatch with the variable runs the batch script in the container, as with --container-image.
    printf '#!/bin/sh\necho "script $(head -1 /etc/os-release) pwd=$(pwd)"\n' >"$OUT/job.sh"
    job=$(cd "$OUT" && as_user "$U" env PYXIS_CONTAINER_IMAGE="$PYXIS_IMAGE" sbatch --parsable -o "$OUT/out" "$OUT/job.sh")
    wait_job "$job"
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    grep -qxF "script NAME=\"Shifter test busybox\" pwd=$OUT" "$OUT/out"
    # Given to the job alone (--export), sbatch never saw it to resolve the image: the task says so.
    job=$(cd "$OUT" && submit "$U" -o "$OUT/out3" --export=ALL,PYXIS_CONTAINER_IMAGE="$PYXIS_IMAGE" "$OUT/job.sh")
    wait_job "$job"
    cat "$OUT/out3"
    grep -qF "PYXIS_CONTAINER_IMAGE reached the task but not srun or sbatch (given with --export?)" "$OUT/out3"
    # Exported in a job script, it puts the later sruns of the job in the image; emptied, on the host.
    cat >"$OUT/job2.sh" <<SCRIPT
#!/bin/sh
export PYXIS_CONTAINER_IMAGE=$PYXIS_IMAGE
srun -N1 sh -c 'echo "step \$(head -1 /etc/os-release)"'
PYXIS_CONTAINER_IMAGE= srun -N1 sh -c 'echo "host \$(head -1 /etc/os-release)"'
SCRIPT
    job=$(submit "$U" -o "$OUT/out2" "$OUT/job2.sh")
    wait_job "$job"
    cat "$OUT/out2"
    [ "$(job_state "$job")" = COMPLETED ]
    grep -qxF 'step NAME="Shifter test busybox"' "$OUT/out2"
    grep -q '^host ' "$OUT/out2"
    ! grep -qxF 'host NAME="Shifter test busybox"' "$OUT/out2" || false
    # A yes-or-no value Pyxis would ignore is refused at submission, named.
    run as_user "$U" env PYXIS_CONTAINER_IMAGE="$PYXIS_IMAGE" PYXIS_CONTAINER_MOUNT_HOME=maybe srun -N1 true
    [ "$status" -ne 0 ]
    [[ "$output" == *"shifter: submit: PYXIS_CONTAINER_MOUNT_HOME=maybe: expected 1, true, yes or y, or 0, false, no or n"* ]]
    # The variable passes the option's checks: the second user's private directory is refused.
    local top=/var/tmp/shifter-pyxis-vars
    rm -rf "$top" && mkdir -p "$top/theirs" && chown "$BED_USER2" "$top/theirs" && chmod 700 "$top/theirs"
    run as_user "$U" env PYXIS_CONTAINER_IMAGE="$PYXIS_IMAGE" PYXIS_CONTAINER_MOUNTS="$top/theirs:/test-mnt" srun -N1 true
    echo "$output"
    rm -rf "$top"
    [ "$status" -ne 0 ]
    [[ "$output" == *"user $U may not open source $top/theirs: Permission denied"* ]]
    assert_nodes_clean
}

@test "pyxis: an image not yet in the store is pulled through the gateway at submission, as the user, its progress shown; later jobs find it" {
    gateway_for_the_bed_up
    local name=127.0.0.1:5000#test/multiarch:latest
    run as_user "$U" srun -N1 --container-image="$name" sh -c 'head -1 /etc/os-release'
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *'shifter: submit: image "docker:127.0.0.1:5000/test/multiarch:latest" is not in the image store yet; pulling it now with shifterimg pull'* ]]
    [[ "$output" == *"pulled docker:127.0.0.1:5000/test/multiarch:latest"* ]]
    [ "${lines[-1]}" = 'NAME="Shifter test busybox"' ]
    # The gateway pulled it for that user.
    grep -q "multiarch" "$WORK/gateway.log"
    # A later job finds it in the store: nothing is pulled.
    run as_user "$U" env PYXIS_CONTAINER_IMAGE="docker://$name" srun -N1 sh -c 'head -1 /etc/os-release'
    [ "$status" -eq 0 ]
    [[ "$output" != *"pulling it"* ]]
    [ "${lines[-1]}" = 'NAME="Shifter test busybox"' ]
    # An image the registry lacks: the gateway's answer, then why the submission fails.
    run as_user "$U" srun -N1 --container-image=127.0.0.1:5000#test/absent:1 true
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *'shifter: submit: image "docker:127.0.0.1:5000/test/absent:1" could not be pulled (shifterimg pull exited with status 1; its message is above)'* ]]
    # Shifter's own --image pulls nothing: the gateway's answer, as before.
    run as_user "$U" srun -N1 --image=127.0.0.1:5000/test/absent:2 true
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"shifter: submit: lookup docker:127.0.0.1:5000/test/absent:2: not found (404 from gateway"*"[not found]"* ]]
    [[ "$output" != *"pulling it"* ]]
    # An image of a local Docker daemon cannot be reached from the nodes.
    run as_user "$U" srun -N1 --container-image=dockerd://busybox true
    [ "$status" -ne 0 ]
    [[ "$output" == *"--container-image=dockerd://busybox: dockerd://: images come from a registry through the image gateway"* ]]
}

@test "pyxis: options Shifter cannot honour are refused at submission with the reason" {
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-remap-root id -u
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"shifter: submit: --container-remap-root: Shifter runs every container as the submitting user, never as root, remapped or not; remove the option"* ]]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-mounts=/etc:/x:x-create=dir true
    [ "$status" -ne 0 ]
    [[ "$output" == *"shifter: submit: --container-mounts entry \"/etc:/x:x-create=dir\": flag \"x-create=dir\" is not supported"* ]]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-workdir=relative true
    [ "$status" -ne 0 ]
    [[ "$output" == *"shifter: submit: --container-workdir=relative: the path must be absolute"* ]]
    run as_user "$U" sbatch --container-image="$PYXIS_IMAGE" --image="$IMAGE_BUSYBOX" --wrap true
    [ "$status" -ne 0 ]
    [[ "$output" == *"--image and --volume cannot be combined with the Pyxis-style --container-* options"* ]]
    # --no-container-remap-root is what Shifter does anyway.
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --no-container-remap-root id -u
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "$(id -u "$U")" ]
    # Pyxis' other options are known (no "unrecognized option" from srun): those Shifter does not
    # support say so, and why, as do their variables; those that ask for Shifter's way run.
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-name=c1 true
    [ "$status" -ne 0 ]
    [[ "$output" == *"shifter: submit: --container-name=c1: named containers are not supported"* ]]
    run as_user "$U" env PYXIS_CONTAINER_NAME=c1 srun -N1 --container-image="$PYXIS_IMAGE" true
    [ "$status" -ne 0 ]
    [[ "$output" == *"shifter: submit: --container-name=c1: named containers are not supported"* ]]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-writable true
    [[ "$output" == *"shifter: submit: --container-writable: writable containers are not supported; write to a directory of --container-mounts"* ]]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-save="$OUT/c.sqsh" true
    [[ "$output" == *"shifter: submit: --container-save=$OUT/c.sqsh: saving a container is not supported"* ]]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-entrypoint true
    [[ "$output" == *"shifter: submit: --container-entrypoint: running the image's entrypoint is not supported"* ]]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-unshare=net true
    [[ "$output" == *"shifter: submit: --container-unshare=net: new namespaces are not supported"* ]]
    run as_user "$U" srun -N1 --container-image="$PYXIS_IMAGE" --container-readonly --no-container-entrypoint --container-entrypoint-log id -u
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "$(id -u "$U")" ]
}
