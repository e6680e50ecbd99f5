#!/usr/bin/env bats
# A hostile neighbour on a shared node: another user, in a job of their own or in a shell on the
# node outside any job, tries to read what a job's root exposes on the host. The root holds a
# private image, volumes from directories only the job's user may enter, a per-node cache and the
# prolog's record; none of it may be reached from the host by anyone but root.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    OWNER=$BED_USER2 NEIGHBOUR=$BED_USER
    OUT=$(mktemp -d /tmp/shifter-neighbour.XXXXXX)
    chmod 755 "$OUT"
    # A directory only the owner may enter, with a file the job mounts as a volume.
    mkdir -p "$OUT/secret/data" "$OUT/out"
    echo "the owner's data" >"$OUT/secret/data/x"
    chown -R "$OWNER" "$OUT/secret"
    chmod 700 "$OUT/secret"
    chmod 777 "$OUT/out"
}

teardown() {
    [ -z "${JOB:-}" ] || { scancel "$JOB" 2>/dev/null; wait_job "$JOB" || true; }
    [ -z "${JOB2:-}" ] || { scancel "$JOB2" 2>/dev/null; wait_job "$JOB2" || true; }
    [ -f "$OUT/flipper.pid" ] && kill "$(cat "$OUT/flipper.pid")" 2>/dev/null
    [ -n "${PUBLIC:-}" ] && rmdir "$PUBLIC" 2>/dev/null
    if [ -n "${QUOTA_FS:-}" ]; then
        on_node n3 umount "$BED_DIR/cache" 2>/dev/null || true
        rm -f "$QUOTA_FS"
    fi
    rm -rf "$OUT"
}

# charged NODE UID: the bytes of the regular files owned by UID on the filesystem of the per-node
# cache directory, the files unlinked while in use (a cache's backing file, held by its loop
# device) included: what a user quota on that filesystem charges to UID. XFS bulkstat lists every
# allocated inode as the kernel holds it.
charged() {
    on_node "$1" xfs_io -r -c bulkstat "$BED_DIR/cache" | awk -v uid="$2" '
        function account() { if (owner == uid && mode ~ /^010/) total += blocks * size }
        $1 == "bs_ino" { account(); owner = ""; mode = ""; blocks = 0; size = 0 }
        $1 == "bs_uid" { owner = $3 }
        $1 == "bs_mode" { mode = $3 }
        $1 == "bs_blocks" { blocks = $3 }
        $1 == "bs_blksize" { size = $3 }
        END { account(); print total + 0 }'
}

# as_neighbour_on NODE COMMAND: runs COMMAND with sh as the neighbour in NODE's mount namespace,
# outside any job.
as_neighbour_on() {
    on_node "$1" runuser -u "$NEIGHBOUR" -- sh -c "$2"
}

@test "neighbour: a job's root, image, volumes, cache and record are closed to other users on the node" {
    JOB=$(submit "$OWNER" -w n2 -N1 -o "$OUT/out/job" --image="$IMAGE_PRIVATE" \
        --volume="$OUT/secret/data:/data:ro;/x:/scratch:perNodeCache=size=512m" \
        --wrap "srun shifter sh -c 'cat /data/x; echo cached > /scratch/f; cat /scratch/f; echo started; sleep 300'")
    wait_for_line "$OUT/out/job" started
    cat "$OUT/out/job"
    grep -qx "the owner's data" "$OUT/out/job"
    grep -qx cached "$OUT/out/job"
    local base=$BED_DIR/udiMount/job-$JOB image=$BED_DIR/loopMount/job-$JOB
    # The paths are there, as root sees them: what follows is about permission, not absence.
    on_node n2 test -f "$image/etc/os-release"
    on_node n2 test -f "$base/root/data/x"
    on_node n2 test -f "$base/root/scratch/f"
    on_node n2 test -f "$base/state.json"
    # The neighbour, outside any job, reaches none of it.
    for path in "$image/etc/os-release" "$base/root/data/x" "$base/root/scratch/f" "$base/state.json" \
        "$base/root/etc/passwd"; do
        run as_neighbour_on n2 "cat '$path'"
        echo "$path: $output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"Permission denied"* ]]
    done
    run as_neighbour_on n2 "ls '$BED_DIR/udiMount' '$BED_DIR/loopMount'"
    [ "$status" -ne 0 ]
    [[ "$output" != *"job-$JOB"* ]]
    # Nor does a job of the neighbour's own on the same node.
    job2=$(submit "$NEIGHBOUR" -w n2 -N1 -o "$OUT/out/neighbour" --image="$IMAGE_BUSYBOX" \
        --wrap "cat $image/etc/os-release $base/root/data/x $base/state.json; echo exit=\$?")
    wait_job "$job2"
    cat "$OUT/out/neighbour"
    grep -qx 'exit=1' "$OUT/out/neighbour"
    [ "$(grep -c 'Permission denied' "$OUT/out/neighbour")" -eq 3 ]
    [ "$(grep -c "the owner's data" "$OUT/out/neighbour")" -eq 0 ]
    scancel "$JOB"
    wait_job "$JOB"
    assert_nodes_clean "$JOB"
    JOB=
}

@test "neighbour: a host volume through a symlink the neighbour swaps into the owner's job root never shows the owner's volumes" {
    # The owner's job mounts its private data at /tmp/NAME in its root, which on the node is
    # udiMount/job-N/root/tmp/NAME: the same directory as the host's /tmp, with the owner's mount
    # below it. The neighbour names a host volume through a symlink it keeps swapping between the
    # host's /tmp and that path. Root binds the directory the neighbour's own process opened, so
    # the neighbour gets /tmp as the neighbour sees it, or "Permission denied", never the mount.
    PUBLIC=/tmp/shifter-neighbour-pub.$$
    mkdir -m 755 "$PUBLIC"
    JOB=$(submit "$OWNER" -w n2 -N1 -o "$OUT/out/job" --image="$IMAGE_BUSYBOX" \
        --volume="$OUT/secret/data:$PUBLIC:ro:host" --wrap "srun shifter sh -c 'cat $PUBLIC/x; echo started; sleep 300'")
    wait_for_line "$OUT/out/job" started
    grep -qx "the owner's data" "$OUT/out/job"
    install -d -o "$NEIGHBOUR" -m 755 "$OUT/n"
    cat >"$OUT/n/flip.py" <<'PY'
import os, sys
first, second, link, report = sys.argv[1:5]
with open(report, "w") as pipe:
    pipe.write(f"{os.getpid()}\n")
while True:
    for target in (first, second):
        os.symlink(target, link + ".new")
        os.replace(link + ".new", link)
PY
    # The flipper's own pid comes through a fifo, once it runs.
    mkfifo -m 666 "$OUT/n/pid"
    as_user "$NEIGHBOUR" python3 "$OUT/n/flip.py" /tmp "$BED_DIR/udiMount/job-$JOB/root/tmp" "$OUT/n/l" "$OUT/n/pid" \
        </dev/null >/dev/null 2>&1 3>&- &
    cat "$OUT/n/pid" >"$OUT/flipper.pid"
    # Before the fix, about one try in four showed the owner's data.
    local try
    for try in $(seq 12); do
        run as_user "$NEIGHBOUR" srun -w n2 -N1 --container-image="${IMAGE_BUSYBOX/\//#}" --container-mounts="$OUT/n/l:/mnt" \
            cat "/mnt/${PUBLIC#/tmp/}/x"
        echo "try $try: $output"
        [[ "$output" != *"the owner's data"* ]]
    done
}

@test "neighbour: a host volume of / copies no job's root: the owner's job ends cleanly beside it, and volumes nest no further" {
    JOB=$(submit "$OWNER" -w n2 -N1 -o "$OUT/out/job" --image="$IMAGE_BUSYBOX" \
        --volume="$OUT/secret/data:/data:ro" --wrap "srun shifter sh -c 'echo started; sleep 300'")
    wait_for_line "$OUT/out/job" started
    # The neighbour's container holds the host's / twice over while the owner's job ends: before the
    # fix, its copies of the owner's root kept the root's directories busy, the epilog failed and
    # the node was drained.
    as_user "$NEIGHBOUR" srun -w n2 -N1 --container-image="${IMAGE_BUSYBOX/\//#}" --container-mounts=/:/h0,/:/h1 \
        sh -c "awk '\$5 ~ \"^/h[01]$BED_DIR/(udi|loop)Mount/\"' /proc/self/mountinfo | wc -l; echo ready; sleep 15" \
        >"$OUT/out/neighbour" 2>&1 &
    local neighbour=$!
    wait_for_line "$OUT/out/neighbour" ready
    cat "$OUT/out/neighbour"
    # No copy of a root or an image (the owner's, or the neighbour's own) is in it.
    [ "$(head -1 "$OUT/out/neighbour")" = 0 ]
    scancel "$JOB"
    wait_job "$JOB"
    [ "$(job_state "$JOB")" = CANCELLED ]
    # The epilog ran while the neighbour's container held the host's /: the owner's root and image
    # directories are gone, and the node is in service.
    on_node n2 test ! -e "$BED_DIR/udiMount/job-$JOB"
    on_node n2 test ! -e "$BED_DIR/loopMount/job-$JOB"
    [[ "$(sinfo -h -n n2 -o %T)" != *drain* ]]
    wait "$neighbour"
    assert_nodes_clean "$JOB"
    JOB=
    # Host volumes of / do not nest: each holds the host's mounts once, so three cost three times
    # one, where before the fix they multiplied (66, 156, 696 mounts for 1, 2, 4).
    count() {
        local volumes=$1
        as_user "$NEIGHBOUR" srun -w n2 -N1 --container-image="${IMAGE_BUSYBOX/\//#}" ${volumes:+--container-mounts=$volumes} \
            grep -c . /proc/self/mountinfo | tail -1
    }
    local none one three
    none=$(count "") one=$(count /:/h0) three=$(count /:/h0,/:/h1,/:/h2)
    echo "mounts: none=$none one=$one three=$three"
    [ $((three - none)) -le $((3 * (one - none) + 3)) ]
}

@test "neighbour: a volume target inside a directory the user may not enter gets one answer, whatever is there" {
    # The owner's directory holds a file and a directory; the neighbour names targets there
    # through the host's /tmp in the container, and through a host volume of /. Root makes and
    # mounts targets, so its answers (mounted, "not a directory", "cross-device") told them apart.
    mkdir -p "$OUT/secret/dir"
    chown "$OWNER" "$OUT/secret/dir"
    install -d -o "$NEIGHBOUR" -m 755 "$OUT/n"
    echo mine >"$OUT/n/f"
    mkdir -p "$OUT/n/d"
    chown -R "$NEIGHBOUR" "$OUT/n"
    local name answers=()
    for name in data/x dir missing; do
        for volume in "$OUT/n/f:$OUT/secret/$name" "$OUT/n/d:$OUT/secret/$name" "/:/h0:host;$OUT/n/f:/h0$OUT/secret/$name" \
            "$OUT/n/d:$OUT/secret/$name:tmpfs"; do
            run shifter_as "$NEIGHBOUR" --image="$IMAGE_BUSYBOX" "--volume=$volume" true
            echo "$volume: $output"
            [ "$status" -ne 0 ]
            [[ "$output" == *"user $NEIGHBOUR may not reach target "*": Permission denied" ]]
            answers+=("${output//$name/NAME}")
        done
    done
    # The same words for a file, a directory and nothing, once the name is set aside.
    [ "$(printf '%s\n' "${answers[@]}" | sort -u | wc -l)" -eq 4 ]
    # A target the user may reach is made as before.
    run shifter_as "$NEIGHBOUR" --image="$IMAGE_BUSYBOX" "--volume=$OUT/n/f:/new/file" cat /new/file
    [ "$status" -eq 0 ]
    [ "$output" = mine ]
}

@test "neighbour: each user's per-node cache is charged to that user, not root" {
    command -v xfs_io >/dev/null || skip "xfs_io (xfsprogs) is not installed"
    # n3's per-node cache directory becomes an XFS filesystem of its own, as a parallel filesystem
    # with quotas would be; the other nodes keep the bed's. With user quotas where the kernel has
    # them (it may not: XFS quota is a build option), and the owners' blocks read in any case.
    QUOTA_FS=$(mktemp /var/tmp/shifter-quota.XXXXXX)
    truncate -s 2G "$QUOTA_FS"
    mkfs.xfs -q "$QUOTA_FS"
    local quota=1
    on_node n3 mount -o loop,uquota "$QUOTA_FS" "$BED_DIR/cache" 2>/dev/null ||
        { quota=0; on_node n3 mount -o loop "$QUOTA_FS" "$BED_DIR/cache"; }
    [ "$quota" = 1 ] || echo "# this kernel has no XFS quota: the owners' blocks are checked without a quota report" >&3
    on_node n3 chmod 755 "$BED_DIR/cache"
    local owner_uid neighbour_uid mib=$((1024 * 1024))
    owner_uid=$(id -u "$OWNER") neighbour_uid=$(id -u "$NEIGHBOUR")
    [ "$(charged n3 "$owner_uid")" -eq 0 ]
    # Two users' jobs on one node, each with a cache it writes 48 MiB to.
    local write="dd if=/dev/zero of=/scratch/f bs=1M count=48 conv=fsync status=none; echo started; sleep 300"
    JOB=$(submit "$OWNER" -w n3 -N1 -o "$OUT/out/owner" --image="$IMAGE_BUSYBOX" \
        --volume="/x:/scratch:perNodeCache=size=512m" --wrap "srun shifter sh -c '$write'")
    JOB2=$(submit "$NEIGHBOUR" -w n3 -N1 -o "$OUT/out/neighbour" --image="$IMAGE_BUSYBOX" \
        --volume="/x:/scratch:perNodeCache=size=512m" --wrap "srun shifter sh -c '$write'")
    wait_for_line "$OUT/out/owner" started
    wait_for_line "$OUT/out/neighbour" started
    on_node n3 xfs_io -r -c bulkstat "$BED_DIR/cache" | grep -E 'bs_(ino|uid|blocks|nlink|mode) '
    # Each user's cache file is theirs, blocks and all; root owns none of them.
    [ "$(charged n3 "$owner_uid")" -ge $((48 * mib)) ]
    [ "$(charged n3 "$neighbour_uid")" -ge $((48 * mib)) ]
    [ "$(charged n3 0)" -eq 0 ]
    if [ "$quota" = 1 ]; then
        on_node n3 xfs_quota -x -c 'report -u -n -b' "$BED_DIR/cache"
        used() { on_node n3 xfs_quota -x -c 'report -u -n -b -N' "$BED_DIR/cache" | awk -v id="#$1" '$1 == id { print $2 * 1024 }'; }
        [ "$(used "$owner_uid")" -ge $((48 * mib)) ]
        [ "$(used "$neighbour_uid")" -ge $((48 * mib)) ]
    fi
    scancel "$JOB" "$JOB2"
    wait_job "$JOB"
    wait_job "$JOB2"
    assert_nodes_clean "$JOB"
    assert_nodes_clean "$JOB2"
    JOB= JOB2=
    # Once the caches are gone, so are their blocks (the kernel frees a loop device's file, and
    # XFS an unlinked inode, a moment after the last user lets go).
    local deadline=$((SECONDS + 30))
    until [ "$(charged n3 "$owner_uid")" -eq 0 ] && [ "$(charged n3 "$neighbour_uid")" -eq 0 ]; do
        ((SECONDS < deadline)) || { on_node n3 xfs_io -r -c bulkstat "$BED_DIR/cache" | grep -E 'bs_(ino|uid|blocks) '; false; }
        sleep 0.2
    done
    [ -z "$(on_node n3 ls -A "$BED_DIR/cache")" ]
}

@test "neighbour: a user's process outside the job that holds a file of the job's image through a task's /proc/PID/root is ended by the epilog, and the node stays in service" {
    JOB=$(submit "$NEIGHBOUR" -w n1 -N1 -o "$OUT/out/job" --image="$IMAGE_BUSYBOX" \
        --wrap "srun shifter sh -c 'echo ready; exec sleep 600'")
    wait_for_line "$OUT/out/job" ready
    local task
    task=$(pgrep -u "$NEIGHBOUR" -x sleep | head -n 1)
    [ -n "$task" ]
    # The same user, in a shell on the node outside the job: the image's busybox held open, its
    # working directory in the container.
    start_holder n1 "$NEIGHBOUR" "$OUT/out/held" \
        "exec 7</proc/$task/root/bin/busybox; cd /proc/$task/root/etc; echo held > '$OUT/out/held'; exec sleep 601"
    scancel "$JOB"
    wait_job "$JOB" 60
    # Killed by the epilog, which says so in slurmd's log: it kept the image's loop device bound,
    # and the node would have drained for it.
    holder_was_killed
    grep -F "epilog: job $JOB: ending process " "$SLURM_DIR/log/slurmd-n1.log" |
        grep -qF "(sleep, uid $(id -u "$NEIGHBOUR")): it holds a file of the job's root from outside it"
    assert_nodes_clean "$JOB"
    [ "$(sinfo -h -n n1 -o %t)" = idle ]
    JOB=
}
