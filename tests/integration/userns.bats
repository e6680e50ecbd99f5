#!/usr/bin/env bats
# entryMode=userns: shifter without the setuid bit enters the job's container through the user
# and mount namespaces that the prolog made, as the user, with nothing privileged on the node.
# The bed is switched to that mode for this file and switched back after.

load helpers
bats_require_minimum_version 1.5.0

setup_file() {
    BEFORE=$ENTRY_MODE
    echo "$BEFORE" > "$BATS_FILE_TMPDIR/entry-mode"
    "$SHIFTER_SOURCE/tests/harness/bed" entry-mode userns
    # The probe reaches the containers through the bed's site mount (/site, read-only).
    gcc -static -O2 -Wall -o "$BED_DIR/site/userns-probe" "$SHIFTER_SOURCE/tests/harness/userns-probe.c"
    chmod 755 "$BED_DIR/site/userns-probe"
}

teardown_file() {
    rm -f "$BED_DIR/site/userns-probe"
    sysctl -q -w user.max_user_namespaces="$(cat "$BATS_FILE_TMPDIR/max-userns" 2>/dev/null || sysctl -n user.max_user_namespaces)"
    "$SHIFTER_SOURCE/tests/harness/bed" entry-mode "$(cat "$BATS_FILE_TMPDIR/entry-mode")"
}

setup() {
    U=$BED_USER
    U2=$BED_USER2
    OUT=$(mktemp -d /tmp/shifter-userns.XXXXXX)
    chmod 777 "$OUT"
}

teardown() {
    local job
    # A test that changed the site's configuration saved it here.
    [ ! -e "$OUT/site.conf" ] || cp -p "$OUT/site.conf" "$SITE_CONFIG"
    for job in $(cat "$OUT/jobs" 2>/dev/null); do
        scancel "$job" 2>/dev/null
        wait_job "$job" 60 || true
    done
    rm -rf "$OUT"
}

# entry NODE JOB: the entry directory of JOB on NODE (in the node's mount namespace).
entry() {
    echo "$BED_DIR/udiMount/job-$1.entry"
}

# holder_job USER NODE: a job of USER's on NODE, with the image, that runs until cancelled; its id.
holder_job() {
    local job out
    out=$(mktemp "$OUT/holder.XXXXXX")
    chmod 666 "$out"
    job=$(submit "$1" -w "$2" -o "$out" --image="$IMAGE_BUSYBOX" --wrap "srun shifter sh -c 'echo ready; exec sleep 600'")
    echo "$job" >> "$OUT/jobs"
    wait_for_line "$out" ready
    echo "$job"
}

@test "userns: shifter without the setuid bit runs the batch script and each step in one user namespace: the user's ids and groups, no capabilities, no_new_privs, the maps the prolog wrote" {
    [ "$(stat -c %a "$SHIFTER")" = 755 ]
    cat >"$OUT/probe.sh" <<'SH'
echo "ids $(id -u) $(id -g) $(id -Gn)"
grep -E '^(CapEff|CapPrm|NoNewPrivs):' /proc/self/status | tr -s '\t ' ' '
echo "ns $(readlink /proc/self/ns/user)"
echo "root $(ls -id / | awk '{print $1}')"
sed 's/^/uid_map/' /proc/self/uid_map | tr -s ' '
sed 's/^/gid_map/' /proc/self/gid_map | tr -s ' '
echo "os $(head -1 /etc/os-release)"
SH
    chmod 644 "$OUT/probe.sh"
    job=$(submit "$U" -N1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --wrap "
        shifter sh $OUT/probe.sh > $OUT/batch
        srun shifter sh $OUT/probe.sh > $OUT/step1
        srun shifter sh $OUT/probe.sh > $OUT/step2")
    wait_job "$job" 120
    cat "$OUT/out" "$OUT"/batch "$OUT"/step1
    [ "$(job_state "$job")" = COMPLETED ]
    local uid gid file
    uid=$(id -u "$U")
    gid=$(id -g "$U")
    for file in batch step1 step2; do
        grep -qxF "ids $uid $gid $(id -Gn "$U")" "$OUT/$file"
        grep -qxF "CapEff: 0000000000000000" "$OUT/$file"
        grep -qxF "CapPrm: 0000000000000000" "$OUT/$file"
        grep -qxF "NoNewPrivs: 1" "$OUT/$file"
        grep -qxF 'os NAME="Shifter test busybox"' "$OUT/$file"
        # The user alone in the uid map; the user's groups, each once, in the gid map.
        [ "$(grep -c '^uid_map' "$OUT/$file")" -eq 1 ]
        grep -qxF "uid_map $uid $uid 1" "$OUT/$file"
        [ "$(grep '^gid_map' "$OUT/$file" | awk '{print $2}' | sort -n | tr '\n' ' ')" = \
          "$(id -G "$U" | tr ' ' '\n' | sort -n | tr '\n' ' ')" ]
        ! grep -q '^gid_map 0 ' "$OUT/$file" || false
    done
    # One user namespace, one root, for the batch script and every step on the node.
    [ "$(grep -h '^ns ' "$OUT"/batch "$OUT"/step1 "$OUT"/step2 | sort -u | wc -l)" -eq 1 ]
    ! grep -h '^ns ' "$OUT/batch" | grep -qF "$(readlink /proc/self/ns/user)" || false
    [ "$(grep -h '^root ' "$OUT"/batch "$OUT"/step1 "$OUT"/step2 | sort -u | wc -l)" -eq 1 ]
    assert_nodes_clean "$job"
}

@test "userns: two ranks of a job on one node read each other's memory (cross-memory attach), and MPICH runs between them" {
    mkfifo "$OUT/to1" "$OUT/to0"
    chmod 666 "$OUT/to1" "$OUT/to0"
    job=$(submit "$U" -N1 -n2 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --wrap "
        srun -n2 shifter sh -c 'if [ \$SLURM_PROCID = 0 ]; then exec /site/userns-probe share $OUT/to1 $OUT/to0; else exec /site/userns-probe read $OUT/to1 $OUT/to0; fi'")
    wait_job "$job" 120
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    grep -qx 'cma ok' "$OUT/out"
    if [ -f "$IMAGE_STORE/tags/docker%3A127.0.0.1%3A5000%2Ftest%2Fhello-vm%3Alatest" ]; then
        job=$(submit "$U" -N1 -n2 -o "$OUT/mpi" --image="$REGISTRY_ANON/test/hello-vm:latest" \
            --wrap "srun --mpi=pmi2 -n 2 shifter /app/hello")
        wait_job "$job" 120
        cat "$OUT/mpi"
        [ "$(job_state "$job")" = COMPLETED ]
        [ "$(grep -c '^rank ' "$OUT/mpi")" -eq 2 ]
        grep -qx 'sum 1 of 2 ranks ok' "$OUT/mpi"
    else
        echo "the bed has no MPI images: the MPICH part is left out" >&3
    fi
}

@test "userns: another user can neither open the job's entry nor join its namespaces, even where the owner opens the entry to them, nor enter with shifter" {
    job=$(holder_job "$U" n1)
    local dir pid
    dir=$(entry "$job")
    # Root made it: a tmpfs of the user's, mode 0500, the pins in it.
    [ "$(on_node n1 stat -c '%U %a' "$dir")" = "$U 500" ]
    [ "$(on_node n1 stat -f -c %T "$dir")" = tmpfs ]
    on_node n1 grep -qF " $dir/user " /proc/self/mountinfo
    on_node n1 grep -qF " $dir/mnt " /proc/self/mountinfo
    # What root put there is root's, and the owner of the entry can replace none of it.
    [ "$(on_node n1 stat -c '%U %a' "$dir/state.json")" = "root 444" ]
    on_node n1 runuser -u "$U" -- chmod 700 "$dir"
    run on_node n1 runuser -u "$U" -- sh -c "ln -s /etc/passwd '$dir/x' && mv -f '$dir/x' '$dir/user'"
    [ "$status" -ne 0 ]
    [[ "$output" == *"busy"* ]]
    run on_node n1 runuser -u "$U" -- rm -f "$dir/mnt"
    [ "$status" -ne 0 ]
    on_node n1 test -f "$dir/user"
    on_node n1 grep -qF " $dir/user " /proc/self/mountinfo
    run on_node n1 runuser -u "$U2" -- cat "$dir/user"
    [ "$status" -ne 0 ]
    [[ "$output" == *"Permission denied"* ]]
    # A task's own namespace files are closed to others as well.
    pid=$(pgrep -u "$U" -x sleep | head -n 1)
    run on_node n1 runuser -u "$U2" -- nsenter --user="/proc/$pid/ns/user" --preserve-credentials true
    [ "$status" -ne 0 ]
    # Opened to them by the owner, the pins still give them nothing: the namespace is not theirs.
    on_node n1 runuser -u "$U" -- chmod 755 "$dir"
    run on_node n1 runuser -u "$U2" -- nsenter --user="$dir/user" --mount="$dir/mnt" --preserve-credentials true
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"Operation not permitted"* ]]
    # shifter as the other user, in the job's name: no container of theirs.
    run on_node n1 runuser -u "$U2" -- env SLURM_JOB_ID="$job" "$SHIFTER" --image="$IMAGE_BUSYBOX" true
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"job $job has no container of uid $(id -u "$U2") on this node"* ]]
}

@test "userns: inside, the user cannot unmount or make writable what the prolog mounted, become root, or join another job's namespaces" {
    local first second
    first=$(holder_job "$U" n1)
    second=$(holder_job "$U" n1)
    run on_node n1 runuser -u "$U" -- "$BED_DIR/site/userns-probe" escape \
        "$(entry "$first")/user" "$(entry "$first")/mnt" "$(entry "$second")/user" "$(entry "$second")/mnt"
    echo "$output"
    [ "$status" -eq 0 ]
    grep -qx 'unmount /site: Invalid argument' <<<"$output"
    grep -qx 'unmount /proc: Invalid argument' <<<"$output"
    grep -qx 'unmount /tmp: Invalid argument' <<<"$output"
    grep -qx 'remount /site read-write: Operation not permitted' <<<"$output"
    grep -qx 'write /site: Read-only file system' <<<"$output"
    grep -qx 'write /etc/passwd: Permission denied' <<<"$output"
    grep -qx 'become uid 0: Invalid argument' <<<"$output"
    grep -qx 'drop the supplementary groups: Operation not permitted' <<<"$output"
    grep -qx "join the other job's user namespace: Operation not permitted" <<<"$output"
    grep -qx "join the other job's mount namespace: Operation not permitted" <<<"$output"
    [ ! -e "$BED_DIR/site/userns-probe-was-here" ]
    # Nor from the node's view, in the user namespace alone: a group dropped there would pass
    # files whose group permissions shut it out, anywhere on the node.
    run on_node n1 runuser -u "$U" -- "$BED_DIR/site/userns-probe" groups "$(entry "$first")/user"
    echo "$output"
    [ "$output" = 'drop the supplementary groups: Operation not permitted' ]
}

@test "userns: the epilog ends a process that holds the job's namespace from outside the job, and leaves nothing" {
    job=$(holder_job "$U" n1)
    local dir
    dir=$(entry "$job")
    # The user's own process, outside the job's cgroup and root, holding the mount namespace open.
    start_holder n1 "$U" "$OUT/held" "exec 3<'$dir/mnt'; echo held > '$OUT/held'; exec sleep 600"
    # shifter-admin shows the job's entry; the namespaces are pinned.
    run on_node n1 "$SHIFTER_PREFIX/sbin/shifter-admin" list
    echo "$output"
    grep -qE "^$job +ready +$(id -u "$U") +sha256:[0-9a-f]{12} +[1-9][0-9]* +- +userns$" <<<"$output"
    scancel "$job"
    wait_job "$job" 60
    holder_was_killed
    grep -F "epilog: job $job: ending process " "$SLURM_DIR/log/slurmd-n1.log" |
        grep -qF "(sleep, uid $(id -u "$U")): it holds the job's namespaces from outside them"
    assert_nodes_clean "$job"
    [ "$(sinfo -h -n n1 -o %t)" = idle ]
}

@test "userns: shifter-admin cleanup of a running job ends what runs in its namespaces and removes its entry" {
    job=$(holder_job "$U" n1)
    local task
    task=$(pgrep -u "$U" -x sleep | head -n 1)
    [ -n "$task" ]
    run on_node n1 "$SHIFTER_PREFIX/sbin/shifter-admin" cleanup --job "$job"
    echo "$output"
    [ "$status" -eq 0 ]
    # The task was in the job's namespaces (its root their /, not the root's path on the node):
    # cleanup waits for what it kills, so the task is gone, or a zombie for its parent to reap.
    { [ ! -e "/proc/$task" ] || [ "$(awk '$1 == "State:" { print $2 }' "/proc/$task/status")" = Z ]; }
    ! on_node n1 test -e "$(entry "$job")" || false
    ! on_node n1 grep -q "job-$job" /proc/self/mountinfo || false
}

@test "userns: a step with another image or volumes runs in a root of its own, built on its node before its tasks, in namespaces of its own that another user cannot enter; the step's end removes it" {
    mkdir "$OUT/data" && echo "from the host" >"$OUT/data/x" && chmod -R a+rX "$OUT/data"
    # The job's own step, then one with another image and a volume, which holds until cancelled,
    # then one more in the job's root.
    cat >"$OUT/job.sh" <<SCRIPT
#!/bin/bash
srun shifter sh -c 'echo "job foo=\${FOO:-none} \$(readlink /proc/self/ns/user)"'
srun shifter --image=$IMAGE_LAYERED true
srun --image=$IMAGE_LAYERED --volume=$OUT/data:/data shifter sh -c \
    'setsid sleep 700 </dev/null >/dev/null 2>&1 & echo \$! > $OUT/daemon
     echo "step foo=\$FOO x=\$(cat /data/x) \$(readlink /proc/self/ns/user)"; echo ready > $OUT/ready; exec sleep 600'
srun shifter sh -c 'echo "after foo=\${FOO:-none}"; echo after > $OUT/after; exec sleep 600'
SCRIPT
    job=$(submit "$U" -w n1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" "$OUT/job.sh")
    echo "$job" >> "$OUT/jobs"
    wait_for_line "$OUT/ready" ready
    cat "$OUT/out"
    grep -qx "job foo=none user:\[[0-9]*\]" "$OUT/out"
    grep -qx "step foo=bar x=from the host user:\[[0-9]*\]" "$OUT/out"
    [ "$(grep '^job ' "$OUT/out" | cut -d' ' -f3)" != "$(grep '^step ' "$OUT/out" | cut -d' ' -f4)" ]
    # An image given to shifter, not srun, is not the step's: one line says where it goes.
    grep -qF "shifter: image \"docker:$IMAGE_LAYERED\" is not the image of the step's container (sha256:" "$OUT/out"
    grep -qF "give a step's --image, --volume and --module to srun, not to shifter" "$OUT/out"
    # srun said why this step starts slower.
    grep -qF "its container is built on each node before the tasks start" "$OUT/out"
    # The step's root and entry sit beside the job's, the entry the user's as the job's is.
    local dir
    dir=$BED_DIR/udiMount/job-$job.step-2.entry
    [ "$(on_node n1 stat -c '%U %a' "$dir")" = "$U 500" ]
    run on_node n1 "$SHIFTER_PREFIX/sbin/shifter-admin" list
    echo "$output"
    grep -qE "^$job +ready +$(id -u "$U") +sha256:[0-9a-f]{12} .* userns$" <<<"$output"
    grep -qE "^$job\.2 +ready +$(id -u "$U") +sha256:[0-9a-f]{12} +[1-9][0-9]* +- +userns$" <<<"$output"
    # Another user, naming the job and the step, gets nothing of it.
    run on_node n1 runuser -u "$U2" -- env SLURM_JOB_ID="$job" SLURM_STEP_ID=2 "$SHIFTER" --image="$IMAGE_LAYERED" true
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"job $job has no container of uid $(id -u "$U2") on this node"* ]]
    on_node n1 runuser -u "$U" -- chmod 755 "$dir"
    run on_node n1 runuser -u "$U2" -- nsenter --user="$dir/user" --mount="$dir/mnt" --preserve-credentials true
    [ "$status" -ne 0 ]
    [[ "$output" == *"Operation not permitted"* ]]
    # The step's end removes its root while the job runs on.
    scancel "$job.2"
    wait_for_line "$OUT/after" after
    wait_for_text "$SLURM_DIR/log/slurmd-n1.log" "shifter: step end: job $job step 2: root removed"
    ! on_node n1 test -e "$BED_DIR/udiMount/job-$job.step-2" || false
    ! on_node n1 test -e "$dir" || false
    ! on_node n1 grep -qF "job-$job.step-" /proc/self/mountinfo || false
    on_node n1 test -e "$(entry "$job")"
    grep -qx "after foo=none" "$OUT/out"
    # What the step left running in its namespaces, in a session of its own, ended with it.
    local daemon
    daemon=$(cat "$OUT/daemon")
    [ ! -e "/proc/$daemon" ] || grep -q '^State:[[:space:]]*Z' "/proc/$daemon/status"
    scancel "$job"
    assert_nodes_clean "$job"
}

@test "userns: steps of one job with containers of their own are limited on a node (stepRootLimit); one over it fails with the reason while the others run on" {
    cp -p "$SITE_CONFIG" "$OUT/site.conf"
    echo 'stepRootLimit=1' >> "$SITE_CONFIG"
    cat >"$OUT/job.sh" <<SCRIPT
#!/bin/bash
srun --image=$IMAGE_LAYERED shifter sh -c 'echo ready > $OUT/ready; exec sleep 600' &
until [ -e $OUT/ready ]; do sleep 0.2; done
srun --overlap --image=$IMAGE_LAYERED shifter true
echo "second: \$?"
echo done > $OUT/done
wait
SCRIPT
    job=$(submit "$U" -w n1 -o "$OUT/out" "$OUT/job.sh")
    echo "$job" >> "$OUT/jobs"
    wait_for_line "$OUT/done" done
    cp -p "$OUT/site.conf" "$SITE_CONFIG" && rm "$OUT/site.conf"
    cat "$OUT/out"
    grep -qF "shifter: the step's container could not be set up on node n1: job $job step 1: 1 other steps of the job already run containers of their own on this node, the site's limit (stepRootLimit=1)" "$OUT/out"
    grep -qx "second: 1" "$OUT/out"
    # The first step's container is still there, and runs.
    on_node n1 test -e "$BED_DIR/udiMount/job-$job.step-0.entry"
    pgrep -u "$U" -x sleep >/dev/null
    scancel "$job"
    assert_nodes_clean "$job"
}

@test "userns: the job's epilog removes a step's root that the step's end did not" {
    # A step's slurmstepd killed before its end leaves the step's root: the job's epilog finds it
    # by its name, and shifter-admin lists it under the job until then.
    cat >"$OUT/job.sh" <<SCRIPT
#!/bin/bash
srun --image=$IMAGE_LAYERED shifter sh -c 'echo ready > $OUT/ready; exec sleep 600'
SCRIPT
    job=$(submit "$U" -w n1 -o "$OUT/out" "$OUT/job.sh")
    echo "$job" >> "$OUT/jobs"
    wait_for_line "$OUT/ready" ready
    pkill -KILL -f "^slurmstepd: \[$job\.0\]"
    on_node n1 test -e "$BED_DIR/udiMount/job-$job.step-0.entry"
    scancel "$job"
    wait_job "$job" 60
    cat "$OUT/out"
    ! grep -qF "shifter: step end: job $job step 0: root removed" "$SLURM_DIR/log/slurmd-n1.log" || false
    assert_nodes_clean "$job"
    [ -z "$(sinfo -h -N -t drain,drng -o %N)" ]
}

@test "userns: a kernel that allows no user namespaces fails the prolog once, naming the setting" {
    sysctl -n user.max_user_namespaces > "$BATS_FILE_TMPDIR/max-userns"
    # Writing it needs CAP_SYS_RESOURCE, which some machines (virtual ones, containers) withhold.
    sysctl -q -w user.max_user_namespaces=0 2>/dev/null ||
        skip "user.max_user_namespaces cannot be set here (it needs CAP_SYS_RESOURCE); the kernel's refusal and its message are checked with shifter-admin check-entry in a namespace of the test's own"
    job=$(submit "$U" -N1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --wrap "srun shifter true")
    wait_job "$job" 120
    sysctl -q -w user.max_user_namespaces="$(cat "$BATS_FILE_TMPDIR/max-userns")"
    cat "$OUT/out"
    [ "$(job_state "$job")" != COMPLETED ]
    grep -q "sysctl user.max_user_namespaces=0" "$OUT/out"
    # Once, from the prolog, not once per task; the node stays in service and clean.
    [ "$(grep -c 'max_user_namespaces' "$OUT/out")" -eq 1 ]
    [ "$(sinfo -h -N -o %t | sort -u)" = idle ]
    assert_nodes_clean "$job"
}

@test "userns: shifter-admin check-entry makes and removes a job's namespaces, and names the setting that forbids them" {
    local admin=$SHIFTER_PREFIX/sbin/shifter-admin
    run on_node n1 "$admin" check-entry --user "$U"
    [ "$status" -eq 0 ]
    [ "$output" = "entryMode=userns works on this node: root made a job's user and mount namespaces for uid $(id -u "$U") and removed them" ]
    run on_node n1 ls "$BED_DIR/udiMount"
    [ "$status" -eq 0 ] && [[ "$output" != *entry-probe* ]]
    # Root's tool alone; a job's namespaces are never made for root.
    run --separate-stderr runuser -u "$U2" -- "$admin" check-entry
    [ "$status" -eq 1 ]
    [ "$stderr" = "shifter-admin: check-entry: must be run as root (the job roots and their records belong to root)" ]
    run --separate-stderr "$admin" check-entry --user root
    [ "$status" -eq 1 ]
    [ "$stderr" = "shifter-admin: check-entry: --user root: a job's namespaces are never made for root; name another user" ]
    # A node where no prolog has made udiMount yet is told what to do.
    sed "s|^udiMount=.*|udiMount=$OUT/none|" "$SITE_CONFIG" >"$OUT/none.conf"
    run --separate-stderr "$admin" check-entry --config "$OUT/none.conf" --user "$U"
    [ "$status" -eq 1 ]
    [ "$stderr" = "shifter-admin: check-entry: udiMount $OUT/none does not exist on this node: a job's prolog makes it; run one here first, or make it (root's, mode 0755)" ]
    # With user.max_user_namespaces=0: set in a user namespace of the test's own, where root (mapped
    # to itself, as are the users) holds CAP_SYS_RESOURCE over that namespace's limit, and the kernel
    # then refuses what the prolog does. The namespace's maps are written from outside once it exists
    # (a pipe says when), and the command re-executes to take its capabilities in it.
    mkfifo "$OUT/made" "$OUT/mapped"
    local made
    exec {made}<>"$OUT/made"
    unshare -U -m --propagation private sh -c 'echo made > "$1"; read _ < "$2"; shift 2
        exec sh -c "echo 0 > /proc/sys/user/max_user_namespaces && exec \"\$@\"" - "$@"' - "$OUT/made" "$OUT/mapped" \
        "$admin" check-entry --user "$U" >"$OUT/out" 2>&1 &
    local pid=$!
    read -r -t 30 -u "$made" _ || { kill "$pid"; false; }
    exec {made}<&-
    echo "0 0 65536" > "/proc/$pid/uid_map"
    echo "0 0 65536" > "/proc/$pid/gid_map"
    timeout 30 sh -c 'echo mapped > "$1"' - "$OUT/mapped"
    local status=0
    wait "$pid" || status=$?
    cat "$OUT/out"
    [ "$status" -eq 1 ]
    [ "$(cat "$OUT/out")" = "shifter-admin: check-entry: couldn't create the user namespace for the job (entryMode=userns): No space left on device; the kernel allows no user namespaces on this node (sysctl user.max_user_namespaces=0): set it above 0, or use entryMode=setuid" ]
    run ls "$BED_DIR/udiMount"
    [ "$status" -eq 0 ] && [[ "$output" != *entry-probe* ]]
}

@test "userns: outside a job, shifter says it runs only in jobs" {
    run sh -c "cd /tmp && runuser -u '$U' -- '$SHIFTER' --image='$IMAGE_BUSYBOX' true"
    [ "$status" -ne 0 ]
    [ "$output" = "shifter: this site runs containers only in jobs (entryMode=userns), and this is not a job step (no SLURM_JOB_ID): ask for the image when you submit (sbatch, salloc or srun --image=IMAGE)" ]
}
