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
    rm -rf "$OUT"
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
