#!/usr/bin/env bats
# Slurm integration on the four-node bed: submission checks, per-job roots built by the prolog,
# `srun shifter` entering them, per-node caches, and epilogs that leave nothing behind.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    U=$BED_USER
    OUT=$(mktemp -d /tmp/shifter-slurm.XXXXXX)
    chmod 777 "$OUT"
}

teardown() {
    rm -rf "$OUT"
    if [ -n "${GW_NODE_BOUND:-}" ]; then on_node n4 umount /etc/shifter/udiRoot.conf || true; fi
    if [ -n "${WORK:-}" ] && [[ $WORK == /tmp/shifter-gwjob.* ]]; then
        stop_gateway
        rm -rf "$WORK"
    fi
}

@test "sbatch -N4 --image runs srun shifter on four nodes in their prepared roots" {
    job=$(submit "$U" -N4 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --wrap "
        srun -N4 --ntasks-per-node=1 sh -c 'test -e $BED_DIR/udiMount/job-\$SLURM_JOB_ID/root || echo \$SLURMD_NODENAME root-hidden'
        srun -N4 --ntasks-per-node=1 shifter -v sh -c 'echo \$SLURMD_NODENAME \$(head -1 /etc/os-release)'")
    wait_job "$job"
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    # Each node prepared the root, which the job's own user cannot reach from the host either.
    [ "$(grep -c 'root-hidden' "$OUT/out")" -eq 4 ]
    [ "$(grep -c 'NAME="Shifter test busybox"' "$OUT/out")" -eq 4 ]
    [ "$(grep 'NAME=' "$OUT/out" | awk '{print $1}' | sort | tr '\n' ' ')" = "n1 n2 n3 n4 " ]
    [ "$(grep -c "$(entering_line "$job")\$" "$OUT/out")" -eq 4 ]
    assert_nodes_clean "$job"
}

@test "the prolog logs how long each node took to build the root, and the CPU time it used" {
    job=$(submit "$U" -N2 -o /dev/null --image="$IMAGE_BUSYBOX" --wrap true)
    wait_job "$job"
    run grep -hE "shifter: prolog: node n[0-9]: job $job: root ready in [0-9]+\.[0-9]{3} ms \(cpu [0-9]+\.[0-9]{3} ms\)$" "$SLURM_DIR"/log/slurmd-n*.log
    echo "$output"
    [ "${#lines[@]}" -eq 2 ]
    # Building a root takes some CPU, and no more than the wall time it took.
    local line wall cpu
    for line in "${lines[@]}"; do
        wall=$(sed -E 's/.*root ready in ([0-9.]+) ms.*/\1/' <<<"$line")
        cpu=$(sed -E 's/.*\(cpu ([0-9.]+) ms\)/\1/' <<<"$line")
        awk -v w="$wall" -v c="$cpu" 'BEGIN { exit !(c > 0 && c <= w * 2 + 1) }'
    done
}

@test "two jobs with different images share a node, each in its own root" {
    # Each job's container says it runs, then waits for the test's go (60 s at most): when the test
    # looks, both certainly run on n1, however loaded the machine is.
    hold="for _ in \$(seq 600); do [ -e $OUT/go ] && break; sleep 0.1; done"
    a=$(submit "$U" -w n1 -n1 -o "$OUT/a" --image="$IMAGE_BUSYBOX" --wrap "srun shifter sh -c 'touch $OUT/a.running; $hold; head -1 /etc/os-release; ls /data 2>&1 | head -1'")
    b=$(submit "$U" -w n1 -n1 -o "$OUT/b" --image="$IMAGE_LAYERED" --wrap "srun shifter sh -c 'touch $OUT/b.running; $hold; cat /data/top'")
    for _ in $(seq 600); do [ -e "$OUT/a.running" ] && [ -e "$OUT/b.running" ] && break; sleep 0.1; done
    both=$(squeue -h -t R -w n1 -o %i | grep -cE "^($a|$b)$" || true)
    touch "$OUT/go"
    wait_job "$a"; wait_job "$b"
    # Both ran on n1 at the same time.
    [ -e "$OUT/a.running" ]
    [ -e "$OUT/b.running" ]
    [ "$both" -eq 2 ]
    cat "$OUT/a" "$OUT/b"
    grep -q 'Shifter test busybox' "$OUT/a"
    grep -q 'No such file or directory' "$OUT/a"
    [ "$(cat "$OUT/b")" = "from the top layer" ]
    assert_nodes_clean "$a"; assert_nodes_clean "$b"
}

@test "--volume of a directory the site mounts works in every step" {
    job=$(submit "$U" -N2 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --volume="/site:/mnt/site:ro" \
        --wrap "srun -N2 --ntasks-per-node=1 shifter cat /mnt/site/README")
    wait_job "$job"
    cat "$OUT/out"
    [ "$(grep -c 'a file from the site' "$OUT/out")" -eq 2 ]
}

@test "a forbidden volume is refused at sbatch time and no job is queued" {
    before=$(squeue -h -u "$U" | wc -l)
    run as_user "$U" sbatch -N1 --image="$IMAGE_BUSYBOX" --volume=/tmp:/etc/x --wrap true
    [ "$status" -ne 0 ]
    [[ "$output" == *'shifter: submit: '*'"/tmp:/etc/x"'*'target may not be under /etc'* ]]
    [ "$(squeue -h -u "$U" | wc -l)" -eq "$before" ]
}

@test "an image that is not in the store is refused at submission with what to do" {
    run as_user "$U" sbatch -N1 --image=127.0.0.1:5000/test/absent:2 --wrap true
    [ "$status" -ne 0 ]
    [[ "$output" == *"shifter: submit: "*"shifterimg pull docker:127.0.0.1:5000/test/absent:2"* ]]
}

@test "a per-node cache is private to each node, XFS, owned by the user, and gone after the job" {
    job=$(submit "$U" -N4 -o "$OUT/out" --image="$IMAGE_BUSYBOX" \
        --volume="/unused:/scratch:perNodeCache=size=512m" --wrap "
        srun -N4 --ntasks-per-node=1 shifter sh -c 'echo \$SLURMD_NODENAME > /scratch/\$SLURMD_NODENAME'
        srun -N4 --ntasks-per-node=1 shifter sh -c 'echo \$SLURMD_NODENAME: \$(ls /scratch) \$(stat -c %U /scratch) \$(grep \" /scratch \" /proc/mounts | cut -d\" \" -f3,4)'")
    wait_job "$job"
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    for node in n1 n2 n3 n4; do
        line=$(grep "^$node:" "$OUT/out")
        [[ "$line" == "$node: $node $U xfs rw,nosuid,nodev"* ]]
    done
    # The backing files were unlinked as soon as they were mounted, and the mounts are gone.
    [ -z "$(ls -A "$BED_DIR/cache")" ]
    assert_nodes_clean "$job"
}

@test "a per-node cache over the site limit is refused at submission" {
    run as_user "$U" sbatch -N1 --image="$IMAGE_BUSYBOX" --volume="/x:/scratch:perNodeCache=size=3g" --wrap true
    [ "$status" -ne 0 ]
    [[ "$output" == *"cache size 3G is over the site limit of 2G"* ]]
    run as_user "$U" sbatch -N1 --image="$IMAGE_BUSYBOX" --volume="/x:/scratch:perNodeCache=size=1g,fs=ext4" --wrap true
    [ "$status" -ne 0 ]
    [[ "$output" == *'"ext4" is not allowed'* ]]
}

@test "per-node caches that add up to more than the site's total per request are refused, in a job and outside one" {
    local volumes="/x:/s1:perNodeCache=size=2g;/y:/s2:perNodeCache=size=2g"
    local reason='the 2 per-node caches of this request add up to 4G, over the site limit of 3G per request (this one asks for 2G)'
    run as_user "$U" sbatch -N1 --image="$IMAGE_BUSYBOX" --volume="$volumes" --wrap true
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"$reason"* ]]
    # shifter outside any job (a login node) is held to the same total.
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" --volume="$volumes" true
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"$reason"* ]]
    [ -z "$(ls -A "$BED_DIR/cache")" ]
    # Within the total, both are made.
    job=$(submit "$U" -N1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --volume="/x:/s1:perNodeCache=size=1g;/y:/s2:perNodeCache=size=2g" \
        --wrap "srun shifter sh -c 'stat -c %U /s1 /s2'")
    wait_job "$job"
    cat "$OUT/out"
    [ "$(grep -cx "$U" "$OUT/out")" -eq 2 ]
}

@test "a job cancelled in the middle of a step leaves every node clean" {
    job=$(submit "$U" -N4 -o /dev/null --image="$IMAGE_BUSYBOX" --volume="/x:/scratch:perNodeCache=size=512m" \
        --wrap "srun -N4 --ntasks-per-node=1 shifter sleep 300")
    wait_running "$job"
    # Wait until the step's processes run inside the roots.
    for _ in $(seq 300); do
        [ "$(pgrep -c -u "$U" -f '^sleep 300$' || true)" -ge 4 ] && break
        sleep 0.2
    done
    [ "$(pgrep -c -u "$U" -f '^sleep 300$')" -ge 4 ]
    scancel "$job"
    wait_job "$job"
    # The job has left squeue, so every node's epilog has ended; a process it killed may still be
    # on its way out for a moment on a loaded machine. What is left after 10 s outlived the job.
    local _
    for _ in $(seq 50); do pgrep -u "$U" -f '^sleep 300$' >/dev/null || break; sleep 0.2; done
    if pgrep -u "$U" -f '^sleep 300$' >/dev/null; then
        local pid
        for pid in $(pgrep -u "$U" -f '^sleep 300$'); do
            # What it is, where it runs, and what started it: the parent's command line and root.
            ps -o pid,ppid,stat,etime,args -p "$pid,$(ps -o ppid= -p "$pid" | tr -d ' ')" >&2
            echo "root: $(readlink "/proc/$pid/root"), mount namespace: $(readlink "/proc/$pid/ns/mnt")" >&2
            tr '\0' '\n' < "/proc/$pid/environ" | grep -E '^(SLURM_JOB_ID|SLURM_STEP_ID|SLURMD_NODENAME)=' >&2 || true
        done
        grep -h "job $job\|JobId=$job\|StepId=$job" "$SLURM_DIR"/log/slurmd-n*.log | tail -40 >&2 || true
        false
    fi
    assert_nodes_clean "$job"
    [ -z "$(ls -A "$BED_DIR/cache")" ]
}

@test "a process the user detaches inside the container, out of Slurm's sight, ends with the job" {
    # setsid and a double fork leave the step's process tree, which proctrack/linuxproc follows;
    # the epilog ends whatever still runs in the job's root before the job leaves the queue.
    job=$(submit "$U" -N1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" \
        --wrap "srun shifter sh -c 'setsid sh -c \"sleep 307 </dev/null >/dev/null 2>&1 &\"; echo started; sleep 300'")
    wait_for_line "$OUT/out" started
    pgrep -f '^sleep 307$'
    scancel "$job"
    wait_job "$job"
    if pgrep -f '^sleep 307$' >/dev/null; then
        ps -o pid,ppid,stat,etime,args -p "$(pgrep -d, -f '^sleep 307$')" >&2
        false
    fi
    assert_nodes_clean "$job"
}

@test "a job whose prolog fails ends cleanly, says why, and leaves nodes clean and in service" {
    id=$(add_store_image prologfail busybox)
    job=$(submit "$U" -N2 -o "$OUT/out" --hold --image="127.0.0.1:5000/test/prologfail:latest" \
        --wrap "srun -N2 shifter true; echo after-srun")
    # The image disappears between submission and the prolog.
    rm -f "$IMAGE_STORE/${id#sha256:}.squashfs"
    scontrol release "$job"
    wait_job "$job"
    state=$(job_state "$job")
    echo "state=$state"
    [ "$state" = FAILED ]
    run grep -h "shifter: prolog: node n[0-9]: job $job: " "$SLURM_DIR"/log/slurmd-n*.log
    echo "$output"
    [ "${#lines[@]}" -ge 1 ]
    [[ "$output" == *"squashfs file"*"is missing"* ]]
    # The job's own output says why.
    cat "$OUT/out"
    grep -q "shifter: the job's container could not be set up on node n[0-9]: job $job: " "$OUT/out"
    ! grep -q after-srun "$OUT/out" || false
    # Nodes stay in service: a user's mistake must not drain them.
    [ -z "$(sinfo -h -N -t drain,drng -o %N)" ]
    assert_nodes_clean "$job"
    rm -f "$IMAGE_STORE/${id#sha256:}.meta.json" "$IMAGE_STORE/tags/"*prologfail*
}

@test "a tag moved after submission does not change the running job's image" {
    id=$(add_store_image movingtag busybox)
    job=$(submit "$U" -N1 -o "$OUT/out" --hold --image="127.0.0.1:5000/test/movingtag:latest" \
        --wrap "srun shifter sh -c 'head -1 /etc/os-release; echo \$SHIFTER_IMAGE'")
    # Re-pull: the tag now names the layered image.
    cp "$IMAGE_STORE/tags/docker%3A127.0.0.1%3A5000%2Ftest%2Flayered%3Alatest" \
        "$IMAGE_STORE/tags/docker%3A127.0.0.1%3A5000%2Ftest%2Fmovingtag%3Alatest"
    scontrol release "$job"
    wait_job "$job"
    cat "$OUT/out"
    grep -q 'Shifter test busybox' "$OUT/out"
    grep -q "id:$id" "$OUT/out"
    rm -f "$IMAGE_STORE/${id#sha256:}".* "$IMAGE_STORE/tags/"*movingtag*
}

@test "another user who sets SLURM_JOB_ID does not enter the job's root" {
    job=$(submit "$U" -w n2 -N1 -o /dev/null --image="$IMAGE_BUSYBOX" --volume="/x:/scratch:perNodeCache=size=512m" \
        --wrap "srun shifter sh -c 'echo secret > /scratch/owned; touch $OUT/written; sleep 30'")
    wait_running "$job"
    # The container has written its file and goes on running.
    for _ in $(seq 600); do [ -e "$OUT/written" ] && break; sleep 0.1; done
    [ -e "$OUT/written" ]
    id=$(on_node n2 cat "$BED_DIR/udiMount/job-$job/state.json" | jq -r .image)
    run on_node n2 runuser -u "$BED_USER2" -- env SLURM_JOB_ID="$job" "$SHIFTER" -v --image="id:$id" \
        sh -c 'cat /scratch/owned 2>&1; echo exit'
    scancel "$job"; wait_job "$job"
    echo "$output"
    if [ "$ENTRY_MODE" = userns ]; then
        [[ "$output" == *"job $job has no container of uid $(id -u "$BED_USER2") on this node"* ]]
    else
        [[ "$output" == *"not using the prepared root of job $job: it belongs to uid $(id -u "$U")"* ]]
    fi
    [[ "$output" != *secret* ]]
    assert_nodes_clean "$job"
}

@test "the epilog is idempotent and correct after a partial prolog" {
    # Part of the root is already gone, and its record too: the epilog removes the rest.
    job=$(submit "$U" -w n3 -N1 -o /dev/null --image="$IMAGE_BUSYBOX" --wrap "sleep 20")
    wait_running "$job"
    for _ in $(seq 600); do on_node n3 test -f "$BED_DIR/udiMount/job-$job/state.json" && break; sleep 0.1; done
    on_node n3 umount "$BED_DIR/udiMount/job-$job/root/proc"
    on_node n3 rm "$BED_DIR/udiMount/job-$job/state.json"
    scancel "$job"; wait_job "$job"
    assert_nodes_clean "$job"
    [ -z "$(sinfo -h -N -t drain,drng -o %N)" ]
}

# Runs srun --help as the user with another plugstack.conf line for the plugin.
srun_with_plugstack() {
    local dir
    dir=$(mktemp -d /tmp/shifter-plugstack.XXXXXX)
    echo "required $SHIFTER_PREFIX/lib/shifter/shifter_spank.so $*" > "$dir/plugstack.conf"
    sed "s|^PlugStackConfig=.*|PlugStackConfig=$dir/plugstack.conf|" "$SLURM_CONF" > "$dir/slurm.conf"
    chmod -R a+rX "$dir"
    runuser -u "$BED_USER" -- env SLURM_CONF="$dir/slurm.conf" srun --help 2>&1
    local status=$?
    rm -rf "$dir"
    return $status
}

@test "an unknown plugstack argument is an error that names it" {
    run srun_with_plugstack shifter_config=/etc/shifter/udiRoot.conf bogus=1
    [ "$status" -ne 0 ]
    [[ "$output" == *'shifter: plugstack argument "bogus=1" is unknown'* ]]
    run srun_with_plugstack enable_ccm=2
    [ "$status" -ne 0 ]
    [[ "$output" == *'plugstack argument "enable_ccm=2": expected 0 or 1'* ]]
}

@test "long_options renames the options to --shifter-image and friends" {
    run srun_with_plugstack shifter_config=/etc/shifter/udiRoot.conf long_options
    [ "$status" -eq 0 ]
    [[ "$output" == *"--shifter-image=image"* ]]
    [[ "$output" == *"--shifter-volume=volumes"* ]]
    [[ "$output" != *"  --image=image"* ]]
}

@test "srun --image in a job runs the step's own image; plain srun runs the job's prepared root" {
    job=$(submit "$U" -N2 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --wrap "
        srun -N2 --ntasks-per-node=1 shifter sh -c 'test -e /data/keep/a && echo step-1 layered || echo step-1 busybox'
        srun -N2 --ntasks-per-node=1 --image=$IMAGE_LAYERED shifter -v sh -c 'test -e /data/keep/a && echo step-2 layered || echo step-2 busybox'
        srun -N1 -n1 shifter sh -c 'test -e /data/keep/a && echo step-3 layered || echo step-3 busybox'")
    wait_job "$job"
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    [ "$(grep -c '^step-1 busybox$' "$OUT/out")" -eq 2 ]
    [ "$(grep -c '^step-2 layered$' "$OUT/out")" -eq 2 ]
    [ "$(grep -c '^step-3 busybox$' "$OUT/out")" -eq 1 ]
    # A root of the step's own: built by shifter (setuid), or before the tasks start (userns).
    if [ "$ENTRY_MODE" = userns ]; then
        [ "$(grep -c "$(entering_line "$job" 1)\$" "$OUT/out")" -eq 2 ]
    else
        [ "$(grep -c 'building a private root' "$OUT/out")" -eq 2 ]
    fi
    grep -q "shifter: srun: this step's --image or --volume differs from the job's" "$OUT/out"
    assert_nodes_clean "$job"
}

@test "srun --image in an allocation made without one runs that image" {
    job=$(submit "$U" -N1 -o "$OUT/out" --wrap "srun -n1 --image=$IMAGE_LAYERED shifter cat /data/keep/a")
    wait_job "$job"
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    grep -qx 'kept file' "$OUT/out"
}

@test "a job's steps never ask the gateway again: they run while it is stopped" {
    # A gateway with a store of its own, which this test's site configuration (sbatch's, and n4's
    # in its mount namespace) names. The batch script's srun reads n4's.
    WORK=$(mktemp -d /tmp/shifter-gwjob.XXXXXX)
    chmod 755 "$WORK"
    mkdir -p "$WORK/images"
    chmod 755 "$WORK/images"
    local port
    port=$(free_port)
    write_gateway_config "$WORK/imagegw.conf" "$port" "$WORK/images"
    sed -e '/^imagePath=/d' -e '/^imageGateway=/d' -e '/^system=/d' /etc/shifter/udiRoot.conf >"$WORK/udiRoot.conf"
    printf 'imagePath=%s\nimageGateway=http://127.0.0.1:%s\nsystem=testbed\n' "$WORK/images" "$port" >>"$WORK/udiRoot.conf"
    chmod 644 "$WORK/udiRoot.conf"
    start_gateway "$port"
    run as_user "$U" shifterimg --config "$WORK/udiRoot.conf" pull "$IMAGE_BUSYBOX"
    echo "$output"
    [ "$status" -eq 0 ]
    on_node n4 mount --bind "$WORK/udiRoot.conf" /etc/shifter/udiRoot.conf
    GW_NODE_BOUND=1
    local lookups
    lookups=$(grep -c "/api/lookup/testbed/" "$WORK/gateway.log" || true)
    # The job waits until the gateway is gone, then runs three steps.
    job=$(unshare -m --propagation private sh -c 'mount --bind "$1" /etc/shifter/udiRoot.conf && shift && exec "$@"' \
        sh "$WORK/udiRoot.conf" runuser -u "$U" -- env SLURM_CONF="$SLURM_CONF" PATH="$SHIFTER_PREFIX/bin:/usr/bin:/bin" \
        sbatch --parsable -w n4 -N1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --wrap "
            i=0; while [ ! -e $OUT/gateway-stopped ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done
            for step in 1 2 3; do srun shifter sh -c \"echo step \$step \\\$(head -1 /etc/os-release)\"; done")
    # sbatch resolved the tag through the gateway, once.
    [ "$(grep -c "/api/lookup/testbed/" "$WORK/gateway.log")" -eq $((lookups + 1)) ]
    stop_gateway
    ! curl -sf "http://127.0.0.1:$port/healthz" || false
    touch "$OUT/gateway-stopped"
    wait_job "$job"
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    [ "$(grep -c '^step [123] NAME="Shifter test busybox"$' "$OUT/out")" -eq 3 ]
    ! grep -q 'gateway' "$OUT/out" || false
    assert_nodes_clean "$job"
}

@test "sbatch --image=local: is checked with the submitting user's own rights" {
    local root=/tmp/shifter-localroot secret=/tmp/shifter-localsecret
    rm -rf "$root" "$secret"
    mkdir -p "$root/bin" "$secret/dir"
    cp /bin/busybox "$root/bin/"
    chmod 755 "$root" "$root/bin"
    chmod 700 "$secret"
    job=$(submit "$U" -N1 -o "$OUT/out" --image="local:$root" --wrap "srun shifter /bin/busybox echo local-ok")
    wait_job "$job"
    cat "$OUT/out"
    grep -qx local-ok "$OUT/out"
    run as_user "$U" sbatch -N1 --image="local:$secret/dir" --wrap true
    echo "$output"
    rm -rf "$root" "$secret"
    [ "$status" -ne 0 ]
    [[ "$output" == *"image \"local:$secret/dir\": user $U may not open it: Permission denied"* ]]
    assert_nodes_clean "$job"
}
