# Common setup for the integration tests: the bed's description and helpers to act as a user.
BED_DIR=${BED_DIR:-/var/tmp/shifter-bed}
[ -f "$BED_DIR/env" ] || { echo "the test bed is not up (run tests/harness/bed up)" >&2; exit 1; }
set -a
# shellcheck disable=SC1091
. "$BED_DIR/env"
set +a
SHIFTER_PREFIX=${SHIFTER_PREFIX:-$BED_DIR/install}
SHIFTER_SOURCE=${SHIFTER_SOURCE:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}

# as_user USER COMMAND...: runs COMMAND as USER with the bed's Slurm configuration.
as_user() {
    local user=$1; shift
    runuser -u "$user" -- env SLURM_CONF="$SLURM_CONF" PATH="$SHIFTER_PREFIX/bin:/usr/bin:/bin" "$@"
}

# registry_token REPOSITORY: a pull token from the bed's token service.
registry_token() {
    curl -sf --cacert "$CA_BUNDLE" -u "$REGISTRY_USER:$REGISTRY_PASSWORD" \
        "$TOKEN_SERVICE?service=shifter-test-registry&scope=repository:$1:pull" | jq -r .token
}

MANIFEST_TYPES='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json'

SHIFTER=${SHIFTER:-$SHIFTER_PREFIX/bin/shifter}

# How the bed's shifter enters containers (tests/harness/bed entry-mode): setuid, or userns,
# where shifter has no privilege and runs only in jobs, in the namespaces their prolog made.
ENTRY_MODE=$(sed -n 's/^entryMode=//p' "$SITE_CONFIG" 2>/dev/null | tail -n 1)
ENTRY_MODE=${ENTRY_MODE:-setuid}

# skip_in_userns REASON: skips a test that needs what only the setuid shifter does.
skip_in_userns() {
    [ "$ENTRY_MODE" = userns ] && skip "entryMode=userns: $1"
    return 0
}

# entering_line JOB [STEP]: what `shifter -v` says as it enters job JOB's prepared container, or
# the own container of its step STEP (entryMode=userns builds one for a step with another image).
entering_line() {
    if [ "$ENTRY_MODE" = userns ]; then
        echo "entering the namespaces of job $1${2:+ step $2}"
    else
        echo "entering the prepared root of job $1"
    fi
}

# in_job_container PID JOB NODE: whether process PID runs in job JOB's container on NODE: chrooted
# to its root (setuid), or in the user namespace pinned in its entry (userns).
in_job_container() {
    if [ "$ENTRY_MODE" = userns ]; then
        local process pin
        process=$(stat -L -c %i "/proc/$1/ns/user" 2>/dev/null) || return 1
        pin=$(on_node "$3" stat -L -c %i "$BED_DIR/udiMount/job-$2.entry/user" 2>/dev/null) || return 1
        [ -n "$process" ] && [ "$process" = "$pin" ]
    else
        [ "$(readlink "/proc/$1/root")" = "$BED_DIR/udiMount/job-$2/root" ] &&
            [ "$(readlink "/proc/$1/ns/mnt")" = "$(readlink "/proc/$(cat "$SLURM_DIR/slurmd-$3.pid")/ns/mnt")" ]
    fi
}

# start_holder NODE USER MARK COMMAND: runs COMMAND (sh) as USER in NODE's mount namespace, in a
# session of its own outside any job, as a process that must hold something of a job; COMMAND
# writes "held" to MARK once it does. HOLDER is the pid of what started it, whose status says how
# the holder ended (see holder_was_killed).
start_holder() {
    on_node "$1" runuser -u "$2" -- setsid -w sh -c "$4" </dev/null >/dev/null 2>&1 &
    HOLDER=$!
    wait_for_line "$3" held
}

# holder_was_killed: the holder of start_holder ended by SIGKILL (status 128 + 9).
holder_was_killed() {
    local status=0
    wait "$HOLDER" || status=$?
    echo "holder's status: $status"
    [ "$status" -eq 137 ]
}

# shifter_as USER ARGS...: runs the installed shifter as USER from /tmp (or from SHIFTER_AS_DIR),
# with the caller's environment. With entryMode=userns, where shifter runs only in a job's
# container, it runs as the one task of a job of its own on n1 (srun -N1 -w n1 "$SHIFTER" ARGS),
# which asks for the --image, --volume and --module of ARGS, so that its prolog builds that
# container. A refusal then comes from srun's submission or from the prolog, and reads as the
# setuid shifter's would: "shifter: REASON", without srun's own lines about the plugin and the
# task's exit status (the status is srun's) and without what names the node and job.
shifter_as() {
    local user=$1; shift
    local directory=${SHIFTER_AS_DIR:-/tmp}
    [ "$ENTRY_MODE" = userns ] || { (cd "$directory" && runuser -u "$user" -- "$SHIFTER" "$@"); return; }
    local arguments=("$@") i srun_options=() status
    for ((i = 0; i < ${#arguments[@]}; i++)); do
        case ${arguments[i]} in
            --image=* | --volume=* | --module=*) srun_options+=("${arguments[i]}") ;;
            -i | --image) srun_options+=("--image=${arguments[++i]}") ;;
            -V | --volume) srun_options+=("--volume=${arguments[++i]}") ;;
            -m | --module) srun_options+=("--module=${arguments[++i]}") ;;
            -- | [!-]*) break ;;
        esac
    done
    # -I: a node that cannot take the job (drained) fails the call instead of holding it.
    (cd "$directory" && runuser -u "$user" -- env SLURM_CONF="$SLURM_CONF" srun -Q -I120 -N1 -n1 -w n1 "${srun_options[@]}" \
        "$SHIFTER" "$@" 2>&1) | sed -E -e '/^srun: error: n1: task 0: Exited with exit code [0-9]+$/d' \
        -e '/^srun: error: (spank: required plugin shifter_spank\.so: init_post_opt\(\) failed|Plugin stack post-option processing failed)/d' \
        -e 's/^srun: error: shifter: submit: (.*) \[[a-z ]+\]$/shifter: \1/' \
        -e "s/^shifter: the job's container could not be set up on node n1: job [0-9]+: /shifter: /"
    status=${PIPESTATUS[0]}
    # srun returns before the job's epilog has run: the call ends with it, as the setuid shifter's
    # private container ends with the command, so that what the test does next (change the site's
    # configuration, look for leftovers) does not meet an epilog at work.
    wait_job "" 120 >&2 || true
    return "$status"
}

# where_shifter_runs COMMAND...: runs COMMAND in the mount namespace where shifter_as's shifter
# starts: this host's, or node n1's with entryMode=userns.
where_shifter_runs() {
    if [ "$ENTRY_MODE" = userns ]; then on_node n1 "$@"; else "$@"; fi
}

# assert_no_leaks: nothing of the bed's roots is mounted here and no loop device is bound.
assert_no_leaks() {
    local mounts loops
    mounts=$(grep -E " $BED_DIR/(udiMount|loopMount)" /proc/self/mountinfo || true)
    for _ in $(seq 50); do losetup -a | grep -qF "$BED_DIR" || break; sleep 0.2; done
    loops=$(losetup -a | grep -F "$BED_DIR" || true)
    if [ -n "$mounts$loops" ]; then
        echo "left behind: $mounts $loops" >&2
        return 1
    fi
}

# submit USER SBATCH-ARGS...: submits a batch job as USER and prints its id.
submit() {
    local user=$1; shift
    as_user "$user" sbatch --parsable "$@" | cut -d';' -f1
}

# wait_job JOBID [SECONDS]: waits until the job (with an empty JOBID: every job) has left the
# queue (its epilog has run on every node). Only squeue's own answer counts: an squeue that could
# not reach slurmctld (a loaded machine) prints nothing as well, and must not pass for a job that
# has gone.
wait_job() {
    local job=$1 seconds=${2:-60} out rc
    local deadline=$((SECONDS + seconds)) which=(-j "$job")
    [ -n "$job" ] || which=()
    while :; do
        out=$(squeue -h "${which[@]}" -o %T 2>&1)
        rc=$?
        if [ "$rc" -eq 0 ] && [ -z "$out" ]; then return 0; fi
        if [ "$rc" -ne 0 ] && [[ "$out" == *"Invalid job id"* ]]; then return 0; fi
        ((SECONDS < deadline)) || { echo "job ${job:-(any)} still queued after ${seconds}s: $out" >&2; return 1; }
        sleep 0.5
    done
}

# wait_running JOBID: waits until the job runs.
wait_running() {
    local job=$1 deadline=$((SECONDS + 60))
    until [ "$(squeue -h -j "$job" -o %T 2>/dev/null)" = RUNNING ]; do
        ((SECONDS < deadline)) || { echo "job $job did not start" >&2; return 1; }
        sleep 0.3
    done
}

# job_state JOBID: the job's final state as slurmctld remembers it.
job_state() {
    scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2
}

# on_node NODE COMMAND...: runs COMMAND in that node's mount namespace.
on_node() {
    local node=$1; shift
    nsenter -t "$(cat "$SLURM_DIR/slurmd-$node.pid")" -m "$@"
}

# assert_nodes_clean [JOBID]: once the job (or, without JOBID, every job) has left the queue, no
# node has a job root mounted, a loop device bound, or a leftover directory or file of the job.
assert_nodes_clean() {
    local node pattern=${1:+job-$1}
    pattern=${pattern:-job-}
    wait_job "${1:-}"
    for node in ${BED_NODE_LIST:-n1 n2 n3 n4}; do
        if on_node "$node" grep -q "$pattern" /proc/self/mountinfo; then
            echo "node $node still has mounts of $pattern:" >&2
            on_node "$node" grep "$pattern" /proc/self/mountinfo >&2
            return 1
        fi
        if on_node "$node" ls "$BED_DIR/udiMount" "$BED_DIR/loopMount" | grep -q "$pattern"; then
            echo "node $node still has directories of $pattern" >&2
            return 1
        fi
    done
    # A detached mount lets go of its loop device once its last user has gone, a moment later.
    local _
    for _ in $(seq 50); do losetup -a | grep -qF "$BED_DIR" || return 0; sleep 0.2; done
    echo "loop devices still bound: $(losetup -a)" >&2
    return 1
}

# add_store_image NAME SOURCE-TAG: a new image in the store (a copy of SOURCE-TAG's files under a
# new image id), tagged docker:$REGISTRY_ANON/test/NAME:latest; prints the new id.
add_store_image() {
    local name=$1 source=$2 src_digest hex
    src_digest=$(cat "$IMAGE_STORE/tags/docker%3A127.0.0.1%3A5000%2Ftest%2F$source%3Alatest")
    hex=$(printf '%s-%s' "$name" "$RANDOM$RANDOM" | sha256sum | cut -d' ' -f1)
    cp "$IMAGE_STORE/${src_digest#sha256:}.squashfs" "$IMAGE_STORE/$hex.squashfs"
    jq --arg d "sha256:$hex" '.digest = $d' "$IMAGE_STORE/${src_digest#sha256:}.meta.json" > "$IMAGE_STORE/$hex.meta.json"
    echo "sha256:$hex" > "$IMAGE_STORE/tags/docker%3A127.0.0.1%3A5000%2Ftest%2F$name%3Alatest"
    chmod 644 "$IMAGE_STORE/$hex".* "$IMAGE_STORE/tags/"*
    echo "sha256:$hex"
}

# wait_for_line FILE TEXT: waits (up to 60 s) until FILE holds a line TEXT, which a job prints
# once its prolog has finished on the node.
wait_for_line() {
    wait_for_grep -qx "$@"
}

# wait_for_text FILE TEXT: waits up to 60 s until a line of FILE holds TEXT.
wait_for_text() {
    wait_for_grep -qF "$@"
}

# wait_for_grep OPTION FILE TEXT: waits up to 60 s until grep OPTION TEXT FILE finds it.
wait_for_grep() {
    local deadline=$((SECONDS + 60))
    until grep "$1" -- "$3" "$2" 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "no line '$3' in $2 after 60 s" >&2; return 1; }
        sleep 0.3
    done
}

# prom_sample FILE NAME LABELS: the value of the Prometheus sample NAME{LABELS} in FILE, or 0 when
# it (or the file) is absent.
prom_sample() {
    local value
    value=$(grep -F "$2{$3} " "$1" 2>/dev/null | awk '{print $2}')
    echo "${value:-0}"
}

# --- the image gateway, for the tests that run one ------------------------------------------

GATEWAY=${SHIFTER_IMAGEGW:-${SHIFTER_PREFIX:-}/bin/shifter-imagegw}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_gateway PORT: starts the gateway with $WORK/imagegw.conf (which listens on PORT), its
# output in $WORK/gateway.log and its pid in $WORK/gateway.pid, and waits until /healthz answers.
start_gateway() {
    local port=$1
    "$GATEWAY" --config "$WORK/imagegw.conf" >>"$WORK/gateway.log" 2>&1 &
    echo $! >"$WORK/gateway.pid"
    # Some tests kill it on purpose; the shell need not report that.
    disown $!
    local deadline=$((SECONDS + 30))
    until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do
        kill -0 "$(cat "$WORK/gateway.pid")" 2>/dev/null || { cat "$WORK/gateway.log" >&2; return 1; }
        ((SECONDS < deadline)) || { echo "the gateway did not start on port $port" >&2; return 1; }
        sleep 0.2
    done
}

# write_gateway_config FILE PORT STORE: a gateway configuration for the bed's system "testbed",
# listening on PORT and pulling from the anonymous registry into STORE; its database beside FILE.
write_gateway_config() {
    cat >"$1" <<CONF
{
    "listen": "127.0.0.1:$2",
    "database": "${1%/*}/state.sqlite",
    "systems": {"testbed": {"imagePath": "$3"}},
    "registries": {"anon": {"url": "https://$REGISTRY_ANON", "caBundle": "$CA_BUNDLE", "auth": "anonymous"}},
    "defaultRegistry": "$REGISTRY_ANON",
    "admins": ["root"]
}
CONF
}

# stop_gateway: stops the gateway started by start_gateway (SIGTERM, then up to 5 s).
stop_gateway() {
    local pid
    pid=$(cat "$WORK/gateway.pid" 2>/dev/null) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$WORK/gateway.pid"
}

# local_import_work: $WORK with its own image store and a site configuration that imports in
# process (imageGateway=local), for tests of shifterimg's own pulls; registry credentials go to
# $WORK/config, and the bed's CA is trusted.
local_import_work() {
    export WORK=$BATS_FILE_TMPDIR/work
    mkdir -p "$WORK/images" "$WORK/config"
    cat > "$WORK/udiRoot.conf" <<CONF
udiMount=$WORK/udiMount
loopMount=$WORK/loopMount
imagePath=$WORK/images
imageGateway=local
CONF
    chmod 644 "$WORK/udiRoot.conf"
    export XDG_CONFIG_HOME=$WORK/config
    export SHIFTER_CA_BUNDLE=$CA_BUNDLE
}

# start_test_registry SCRIPT ARGS...: starts a Python registry of the tests (it prints "ready" once
# it listens), its output in $WORK/registry.out and .log and its pid in $WORK/registry.pid, and
# waits up to 30 s for it.
start_test_registry() {
    /usr/bin/python3 "$@" >"$WORK/registry.out" 2>"$WORK/registry.log" &
    echo $! >"$WORK/registry.pid"
    local tries=0
    until grep -q ready "$WORK/registry.out" 2>/dev/null; do
        tries=$((tries + 1)); [ $tries -lt 300 ] || { cat "$WORK/registry.log" >&2; return 1; }
        sleep 0.1
    done
}
