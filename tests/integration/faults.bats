#!/usr/bin/env bats
# Faults injected into the import path and the Slurm path, and what the product does about them:
# a registry that fails (500, 429, a hung or closed connection), a gateway killed mid-pull, an
# image store that is full, a slurmd restarted under a running job, a missing mkfs.xfs, and a job
# killed with SIGKILL in each phase. Each test says what must hold afterwards: a clear reason,
# nothing partial in the store, nodes without mounts, loop devices or leftover files.
#
# Slurm faults act on node n4 only, and change its site configuration only inside its own mount
# namespace, for the length of one job. SHIFTER_SLOW_TESTS=1 adds the fault that takes minutes
# (a registry that hangs on every attempt: 4 x 60 s).

load helpers
bats_require_minimum_version 1.5.0

SHIFTERIMG=${SHIFTERIMG:-$SHIFTER_PREFIX/bin/shifterimg}
PORT=${FAULT_REGISTRY_PORT:-5012}
REG=127.0.0.1:$PORT
NODE=n4

setup_file() {
    export WORK=$BATS_FILE_TMPDIR/faults
    mkdir -p "$WORK/images" "$WORK/config"
    chmod 755 "$BATS_FILE_TMPDIR" "$WORK" "$WORK/images"
    printf 'udiMount=%s\nloopMount=%s\nimagePath=%s\nimageGateway=local\n' "$WORK/udiMount" "$WORK/loopMount" \
        "$WORK/images" >"$WORK/udiRoot.conf"
    chmod 644 "$WORK/udiRoot.conf"
    export XDG_CONFIG_HOME=$WORK/config SHIFTER_CA_BUNDLE=$CA_BUNDLE
    /usr/bin/python3 "$SHIFTER_SOURCE/tests/hostile/make-corpus.py" "$WORK/corpus" --many-files 10 --bomb-mib 1
    start_test_registry "$SHIFTER_SOURCE/tests/hostile/registry.py" "$PORT" "$BED_DIR/ca/server.crt" \
        "$BED_DIR/ca/server.key" "$WORK/corpus"
    # A mkfs.xfs that holds the prolog, so that a job can be caught in it: it reports the prolog's
    # pid and its own through a FIFO, then waits (60 s at most) until the test releases it.
    printf '#!/bin/sh\necho "$PPID $$" >%s\ni=0\nwhile [ ! -e %s ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done\nexec /sbin/mkfs.xfs "$@"\n' \
        "$WORK/mkfs.fifo" "$WORK/mkfs.release" >"$WORK/slow-mkfs.xfs"
    chmod 755 "$WORK/slow-mkfs.xfs"
}

teardown_file() {
    [ -f "$WORK/registry.pid" ] && kill "$(cat "$WORK/registry.pid")" 2>/dev/null || true
    [ -f "$WORK/gateway.pid" ] && kill -KILL "$(cat "$WORK/gateway.pid")" 2>/dev/null || true
}

setup() {
    OUT=$(mktemp -d /tmp/shifter-faults.XXXXXX)
    chmod 777 "$OUT"
}

teardown() {
    node_site_config_restore
    rm -rf "$OUT"
    # Whatever a fault did to the node, the tests after this one need it back in service.
    node_back_in_service || true
}

store_state() { (cd "$WORK/images" && find . -mindepth 1 -printf '%p %s\n' | sort); }

# failing_pull MODE PATTERN: a pull of the control image through fault MODE fails with one line
# matching PATTERN, and the store is unchanged.
failing_pull() {
    local ref=$REG/fault/$1/good:latest before
    before=$(store_state)
    local start=$SECONDS
    run --separate-stderr "$SHIFTERIMG" --config "$WORK/udiRoot.conf" pull "$ref"
    echo "status=$status elapsed=$((SECONDS - start))s stderr: $stderr"
    [ "$status" -eq 1 ]
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == "shifterimg: pull $ref: "* ]]
    [[ "$stderr" =~ $2 ]]
    [ "$(store_state)" = "$before" ]
}

# blob_requests MODE: how many times the registry was asked for the layer of fault MODE.
blob_requests() {
    local layer
    layer=$(jq -r '.layers[0].digest' "$WORK/corpus/manifests/good")
    grep -c "^GET /v2/fault/$1/good/blobs/$layer " "$WORK/registry.log" || true
}

@test "faults: a registry answering 500 is retried, then the pull fails with the status" {
    failing_pull 500 'blob sha256:[0-9a-f]{64} of fault/500/good: HTTP 500: UNKNOWN: internal server error \(injected\) \(tried 4 times\)'
    [ "$(blob_requests 500)" -eq 4 ]
}

@test "faults: a registry answering 429 is retried after Retry-After, then the pull fails" {
    local start=$SECONDS
    failing_pull 429 'HTTP 429: TOOMANYREQUESTS: slow down \(injected\) \(tried 4 times\)'
    [ "$(blob_requests 429)" -eq 4 ]
    # Three waits of at least the second Retry-After asks for.
    [ $((SECONDS - start)) -ge 3 ]
}

@test "faults: a 503 once, a connection closed mid-blob once, a hung connection once: retried and pulled" {
    for mode in 503once closeonce hangonce; do
        run "$SHIFTERIMG" --config "$WORK/udiRoot.conf" pull "$REG/fault/$mode/good:latest"
        echo "$mode: $output"
        [ "$status" -eq 0 ]
        [ "$(blob_requests "$mode")" -eq 2 ]
    done
}

@test "faults: a connection closed mid-blob every time fails with the transfer error" {
    failing_pull close 'blob sha256:[0-9a-f]{64}: .*(artial|closed|reset|EOF|eof).*\(tried 4 times\)'
    [ "$(blob_requests close)" -eq 4 ]
}

@test "faults: a registry that hangs on every attempt fails after the stall timeout of each" {
    [ "${SHIFTER_SLOW_TESTS:-0}" = 1 ] || skip "takes 4 minutes (4 attempts x 60 s stall timeout); set SHIFTER_SLOW_TESTS=1"
    failing_pull hang 'blob sha256:[0-9a-f]{64}: .*(imeout|too slow|Operation too slow).*\(tried 4 times\)'
    [ "$(blob_requests hang)" -eq 4 ]
}

# in_small_store SIZE-MIB: runs a pull of the 12 MiB image into a store on an ext4 filesystem of
# SIZE-MIB MiB, loop-mounted in a private mount namespace that ends with the command.
pull_into_small_store() {
    local size=$1 fs=$WORK/small-$1.img
    rm -f "$fs"
    truncate -s "${size}M" "$fs"
    mkfs.ext4 -q -F "$fs"
    mkdir -p "$WORK/small"
    printf 'udiMount=%s\nloopMount=%s\nimagePath=%s\nimageGateway=local\n' "$WORK/udiMount" "$WORK/loopMount" \
        "$WORK/small" >"$WORK/small.conf"
    chmod 644 "$WORK/small.conf"
    run --separate-stderr unshare -m --propagation private sh -c '
        mount -o loop "$1" "$2" || exit 99
        "$3" --config "$4" pull "$5"; status=$?
        echo "after: $(find "$2" -mindepth 1 -not -name lost+found | wc -l) $(df --output=used -k "$2" | tail -n 1)" >&2
        exit $status' sh "$fs" "$WORK/small" "$SHIFTERIMG" "$WORK/small.conf" "$REG/hostile/big:latest"
    echo "status=$status stderr: $stderr"
}

# no_loop_device_for FILE: the loop device of FILE went with the namespace (autoclear is asynchronous).
no_loop_device_for() {
    for _ in $(seq 300); do losetup -j "$1" | grep -q . || return 0; sleep 0.1; done
    losetup -j "$1" >&2
    return 1
}

@test "faults: an image store too small for the download fails cleanly" {
    pull_into_small_store 8
    [ "$status" -eq 1 ]
    [ "${#stderr_lines[@]}" -eq 2 ]
    [[ "${stderr_lines[0]}" == "shifterimg: pull $REG/hostile/big:latest: "*"No space left on device"* ]]
    # Nothing is left in the store but the filesystem's own lost+found.
    [[ "${stderr_lines[1]}" == "after: 0 "* ]]
    no_loop_device_for "$WORK/small-8.img"
}

@test "faults: an image store that fills while the image is written fails cleanly" {
    # The 12 MiB layer fits; the layer and the 12 MiB image it becomes do not.
    pull_into_small_store 20
    [ "$status" -eq 1 ]
    [ "${#stderr_lines[@]}" -eq 2 ]
    [[ "${stderr_lines[0]}" == "shifterimg: pull $REG/hostile/big:latest: "*"No space left on device"* ]]
    [[ "${stderr_lines[1]}" == "after: 0 "* ]]
    no_loop_device_for "$WORK/small-20.img"
}

# --- the gateway ------------------------------------------------------------------------------

api() { # METHOD PATH: one request as the bed's user; sets $body
    local credential
    credential=$(runuser -u "$BED_USER" -- munge -n)
    body=$(curl -s -X "$1" -H "authentication: $credential" "http://127.0.0.1:$GW_PORT$2")
}

@test "faults: the gateway killed with SIGKILL mid-download restarts, finishes the pull, and leaves nothing partial" {
    GW_PORT=$(free_port)
    mkdir -p "$WORK/gw/images"
    chmod -R 755 "$WORK/gw"
    cat >"$WORK/imagegw.conf" <<CONF
{
    "listen": "127.0.0.1:$GW_PORT",
    "database": "$WORK/gw/state.sqlite",
    "workers": 2,
    "systems": {"bed": {"imagePath": "$WORK/gw/images"}},
    "registries": {"faults": {"url": "https://$REG", "caBundle": "$CA_BUNDLE", "auth": "anonymous"}},
    "allowUnlistedRegistries": false,
    "defaultRegistry": "$REG",
    "admins": ["root"]
}
CONF
    start_gateway "$GW_PORT"
    tag="$REG/fault/slowonce/big:latest"
    api POST "/api/pull/bed/docker/$tag/"
    echo "$body"
    # Wait until part of the layer is on disk in a staging directory.
    local deadline=$((SECONDS + 60))
    until [ -n "$(find "$WORK/gw/images" -path '*/.import-*' -name 'layer-*.blob' -size +64k 2>/dev/null)" ]; do
        ((SECONDS < deadline)) || { cat "$WORK/gateway.log"; false; }
        sleep 0.2
    done
    api GET "/api/lookup/bed/docker/$tag/"
    [ "$(jq -r .status <<<"$body")" = PULLING ]
    kill -KILL "$(cat "$WORK/gateway.pid")"
    wait_gone "$(cat "$WORK/gateway.pid")"
    # The dead gateway's partial download is still there; no image and no record of one is.
    [ -n "$(find "$WORK/gw/images" -maxdepth 1 -name '.import-*')" ]
    [ -z "$(find "$WORK/gw/images" -maxdepth 1 -name '*.squashfs' -o -maxdepth 1 -name '*.meta.json')" ]
    start_gateway "$GW_PORT"
    deadline=$((SECONDS + 120))
    while :; do
        api GET "/api/lookup/bed/docker/$tag/"
        status=$(jq -r .status <<<"$body")
        [ "$status" = READY ] || [ "$status" = FAILURE ] && break
        ((SECONDS < deadline)) || { echo "$body"; cat "$WORK/gateway.log"; false; }
        sleep 0.5
    done
    echo "$body"
    [ "$status" = READY ]
    id=$(jq -r .id <<<"$body")
    [ -f "$WORK/gw/images/${id#sha256:}.squashfs" ]
    [ -f "$WORK/gw/images/${id#sha256:}.meta.json" ]
    # The killed gateway's staging directory went when the resumed pull started.
    [ -z "$(find "$WORK/gw/images" -maxdepth 1 -name '.import-*' -o -maxdepth 1 -name '.gateway-import-*')" ]
    # The database agrees with the store.
    [ "$(/usr/bin/python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' \
        "$WORK/gw/state.sqlite")" = ok ]
    kill -TERM "$(cat "$WORK/gateway.pid")"
}

# --- Slurm ------------------------------------------------------------------------------------

# node_site_config LINE...: node n4 reads a copy of the site configuration with LINEs replacing
# the keys they set, bind-mounted over the real one inside n4's mount namespace only.
node_site_config() {
    local copy=$WORK/node-udiRoot.conf line key
    cp /etc/shifter/udiRoot.conf "$copy"
    for line in "$@"; do
        key=${line%%=*}
        sed -i "/^$key=/d" "$copy"
        echo "$line" >>"$copy"
    done
    chmod 644 "$copy"
    on_node "$NODE" mount --bind "$copy" /etc/shifter/udiRoot.conf
    NODE_CONFIG_BOUND=1
}

node_site_config_restore() {
    [ -n "${NODE_CONFIG_BOUND:-}" ] || return 0
    on_node "$NODE" umount /etc/shifter/udiRoot.conf || true
    NODE_CONFIG_BOUND=
}

slurmd_pid() { cat "$SLURM_DIR/slurmd-$NODE.pid"; }

# prolog_failures: the failed prologs that n4's metrics file counts.
prolog_failures() {
    prom_sample "$BED_DIR/metrics/shifter-$NODE.prom" shifter_prolog_runs_total "node=\"$NODE\",result=\"failure\""
}

# hold_mkfs: the next run of slow-mkfs.xfs reports through a new FIFO and waits for its release.
hold_mkfs() {
    rm -f "$WORK/mkfs.fifo" "$WORK/mkfs.release"
    mkfifo -m 600 "$WORK/mkfs.fifo"
}

# wait_gone PID: waits (30 s at most) until process PID has exited (gone, or a zombie).
wait_gone() {
    local deadline=$((SECONDS + 30))
    while [ -e "/proc/$1" ] && ! grep -qE '^[0-9]+ \(.*\) Z' "/proc/$1/stat" 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "process $1 is still running" >&2; return 1; }
        sleep 0.1
    done
}

# cache_files JOB: the per-node cache backing files of JOB still under their names.
cache_files() { find "$BED_DIR/cache" -name "shifter-job-$1-*" 2>/dev/null; }

# node_back_in_service: resumes n4 if a fault drained it, and checks that it is idle again.
node_back_in_service() {
    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 30))
    until [ "$(sinfo -h -n "$NODE" -o %t)" = idle ]; do
        ((SECONDS < deadline)) || { sinfo -N >&2; return 1; }
        sleep 0.5
    done
}

@test "faults: mkfs.xfs missing: the prolog says so, the job fails, the node stays clean and in service" {
    node_site_config "mkfsXfsPath=/nonexistent/mkfs.xfs"
    failures=$(prolog_failures)
    job=$(submit "$BED_USER" -w "$NODE" -N1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" \
        --volume="/x:/scratch:perNodeCache=size=512m" --wrap "srun shifter true; echo after-srun")
    wait_job "$job"
    node_site_config_restore
    cat "$OUT/out"
    [ "$(job_state "$job")" = FAILED ]
    grep -q "shifter: prolog: node $NODE: job $job: per-node cache \"/x:/scratch:perNodeCache=size=512M,fs=xfs,method=loop\": /nonexistent/mkfs.xfs is missing or not executable (set mkfsXfsPath in udiRoot.conf)" \
        "$SLURM_DIR/log/slurmd-$NODE.log"
    grep -q "shifter: the job's container could not be set up on node $NODE: job $job: .*mkfs.xfs is missing" "$OUT/out"
    ! grep -q after-srun "$OUT/out" || false
    [ -z "$(sinfo -h -n "$NODE" -t drain,drng -o %N)" ]
    # The node's metrics count the failed prolog.
    [ "$(prolog_failures)" -eq $((failures + 1)) ]
    assert_nodes_clean "$job"
    [ -z "$(cache_files "$job")" ]
}

@test "faults: slurmd restarted while a job runs: the job finishes and its epilog still cleans up" {
    job=$(submit "$BED_USER" -w "$NODE" -N1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" \
        --volume="/x:/scratch:perNodeCache=size=512m" \
        --wrap "srun shifter sh -c 'sleep 20; echo \$(head -1 /etc/os-release) \$(stat -c %U /scratch)'")
    wait_running "$job"
    local deadline=$((SECONDS + 60))
    until pgrep -f '^sleep 20$' >/dev/null; do
        ((SECONDS < deadline)) || { echo "the step's command did not start" >&2; false; }
        sleep 0.2
    done
    # Restart n4's slurmd in the same mount namespace, as a restart on a real node would be: the
    # job's slurmstepd holds that namespace while slurmd is gone.
    old=$(slurmd_pid)
    stepd=$(pgrep -f "slurmstepd: \[$job.batch\]" | head -n 1)
    [ -n "$stepd" ]
    [ "$(readlink "/proc/$stepd/ns/mnt")" = "$(readlink "/proc/$old/ns/mnt")" ]
    kill -TERM "$old"
    for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
    ! kill -0 "$old" 2>/dev/null || false
    nsenter -t "$stepd" -m slurmd -f "$SLURM_CONF" -N "$NODE"
    for _ in $(seq 300); do [ "$(slurmd_pid)" != "$old" ] && kill -0 "$(slurmd_pid)" 2>/dev/null && break; sleep 0.1; done
    [ "$(readlink "/proc/$(slurmd_pid)/ns/mnt")" = "$(readlink "/proc/$stepd/ns/mnt")" ]
    wait_job "$job" 90
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    grep -q "Shifter test busybox.* $BED_USER" "$OUT/out"
    assert_nodes_clean "$job"
    [ -z "$(cache_files "$job")" ]
    node_back_in_service
}

# A job that holds a per-node cache and runs a command for a while, on n4.
submit_long_job() {
    submit "$BED_USER" -w "$NODE" -N1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" \
        --volume="/x:/scratch:perNodeCache=size=512m" --wrap "srun shifter sleep ${1:-30}; echo after-srun"
}

# after_kill JOB: the job is gone, and so is everything of it on every node.
after_kill() {
    wait_job "$1" 90
    echo "state=$(job_state "$1")"
    sleep 1
    assert_nodes_clean "$1"
    [ -z "$(cache_files "$1")" ]
    ! pgrep -f '^sleep 30$' || false
}

@test "faults: SIGKILL of a job during its prolog" {
    node_site_config "mkfsXfsPath=$WORK/slow-mkfs.xfs"
    hold_mkfs
    job=$(submit_long_job)
    read -r prolog mkfs < <(timeout 120 cat "$WORK/mkfs.fifo")
    [ -n "$prolog" ]
    [ -n "$mkfs" ]
    scancel --signal=KILL --full "$job" || scancel "$job"
    touch "$WORK/mkfs.release"
    after_kill "$job"
    node_back_in_service
}

@test "faults: SIGKILL of the prolog process itself: the node drains, the epilog removes the half-built root and cache file" {
    node_site_config "mkfsXfsPath=$WORK/slow-mkfs.xfs"
    hold_mkfs
    job=$(submit_long_job)
    read -r prolog mkfs < <(timeout 120 cat "$WORK/mkfs.fifo")
    [ -n "$prolog" ]
    [ -n "$mkfs" ]
    [ "$(ps -o ppid= -p "$prolog" | tr -d ' ')" = "$(slurmd_pid)" ]
    # The cache file exists under its name while mkfs.xfs runs, root's and closed to everyone
    # else: the job's user must never hold the backing store of a filesystem the kernel mounts.
    [ -n "$(cache_files "$job")" ]
    [ "$(stat -c '%U %a' "$(cache_files "$job")")" = "root 600" ]
    run runuser -u "$BED_USER" -- sh -c "exec 3<>'$(cache_files "$job")'"
    [ "$status" -ne 0 ]
    kill -KILL "$prolog"
    touch "$WORK/mkfs.release"
    # Slurm drains the node and holds the requeued job; the epilog runs all the same.
    for _ in $(seq 100); do [ -z "$(cache_files "$job")" ] && break; sleep 0.2; done
    sinfo -h -n "$NODE" -o '%t %E'
    scancel "$job"
    after_kill "$job"
    node_back_in_service
}

@test "faults: SIGKILL of a job while its step starts" {
    job=$(submit_long_job)
    wait_running "$job"
    # Kill as soon as the step exists, before or while shifter enters the root.
    for _ in $(seq 300); do squeue -h -s -j "$job" -o %i 2>/dev/null | grep -q "^$job\.0$" && break; sleep 0.02; done
    scancel --signal=KILL --full "$job"
    after_kill "$job"
}

@test "faults: SIGKILL of a job while its command runs in the container" {
    job=$(submit_long_job)
    wait_running "$job"
    for _ in $(seq 300); do pgrep -f '^sleep 30$' >/dev/null && break; sleep 0.2; done
    pgrep -f '^sleep 30$'
    scancel --signal=KILL --full "$job"
    after_kill "$job"
}

@test "faults: SIGKILL of the epilog: the node drains with the root left; shifter-admin finds and removes it" {
    # The site's epilog hook holds the epilog: it reports the epilog's pid through a FIFO, then
    # waits. So the test kills the epilog while it certainly runs, however loaded the machine is.
    local fifo=$WORK/epilog.fifo epilog hook
    rm -f "$fifo"
    mkfifo -m 600 "$fifo"
    printf '#!/bin/sh\necho "$PPID $$" >%s\nexec sleep 300\n' "$fifo" >"$WORK/hold-epilog.sh"
    chmod 755 "$WORK/hold-epilog.sh"
    node_site_config "siteEpilogHook=$WORK/hold-epilog.sh"
    job=$(submit_long_job 3)
    read -r epilog hook < <(timeout 120 cat "$fifo")
    [ -n "$epilog" ]
    [ -n "$hook" ]
    # The hook's parent is the epilog process that slurmd started for this job.
    [ "$(ps -o ppid= -p "$epilog" | tr -d ' ')" = "$(slurmd_pid)" ]
    tr '\0' ' ' <"/proc/$epilog/cmdline" | grep -q 'spank epilog'
    kill -KILL "$epilog"
    kill -KILL "$hook" || true
    wait_job "$job"
    node_site_config_restore
    state=$(sinfo -h -n "$NODE" -o '%t %E')
    echo "node: $state"
    leftover=$(on_node "$NODE" grep -c "job-$job" /proc/self/mountinfo || true)
    echo "mounts left by the killed epilog: $leftover"
    # Slurm drains a node whose epilog failed, so no job lands on what is left there.
    [[ "$state" == drain* ]]
    [ "$leftover" -gt 0 ]
    # The administrator's tools: list shows the root, check reports it with the command to run,
    # cleanup removes it, and check then finds nothing.
    run on_node "$NODE" "$SHIFTER_PREFIX/sbin/shifter-admin" list --config /etc/shifter/udiRoot.conf
    echo "$output"
    [ "$status" -eq 0 ]
    grep -qE "^$job +ready +[0-9]+ +sha256:" <<<"$output"
    run on_node "$NODE" "$SHIFTER_PREFIX/sbin/shifter-admin" check --config /etc/shifter/udiRoot.conf
    echo "$output"
    [ "$status" -eq 1 ]
    grep -qF "job $job has ended but its root is ready here" <<<"$output"
    grep -qF "run 'shifter-admin cleanup --job $job'" <<<"$output"
    run on_node "$NODE" "$SHIFTER_PREFIX/sbin/shifter-admin" cleanup --config /etc/shifter/udiRoot.conf --job "$job"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "job $job: clean" ]
    assert_nodes_clean "$job"
    [ -z "$(cache_files "$job")" ]
    run on_node "$NODE" "$SHIFTER_PREFIX/sbin/shifter-admin" check --config /etc/shifter/udiRoot.conf
    echo "$output"
    [ "$status" -eq 0 ]
    node_back_in_service
}
