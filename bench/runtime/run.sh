#!/bin/bash
# Start-up cost: /bin/true in an image, entered each of the ways a site could, timed side by side
# in one run (hyperfine, in interleaved rounds; medians). Writes bench/runtime/RESULTS.md with WRITE=1.
#
#   bench/runtime/run.sh            RUNS=30 by default
#   COMPARE="before=/path/to/shifter" bench/runtime/run.sh      also times other builds' entry
. "$(dirname "$0")/../common.sh"
RUNS=${RUNS:-30}
OUT=$(mktemp -d /tmp/shifter-bench.XXXXXX); chmod 777 "$OUT"
MNT=$(mktemp -d /tmp/shifter-bench-mnt.XXXXXX)
JOB=""
USERNS_JOB=""
cleanup() {
    [ -n "$JOB" ] && scancel "$JOB" 2>/dev/null
    [ -n "$USERNS_JOB" ] && scancel "$USERNS_JOB" 2>/dev/null
    site_entry_mode setuid
    umount "$MNT" 2>/dev/null; rmdir "$MNT" 2>/dev/null
    rm -rf "$OUT"
    bench_teardown
}
trap cleanup EXIT
bench_setup

digest=$(busybox_digest)
squashfs=$IMAGE_STORE/${digest#sha256:}.squashfs
declare -A median note

# The ways are timed in ROUNDS rounds (default 3) of RUNS/ROUNDS runs each, every way once a round,
# so a change in the machine's load during the run reaches every way alike; a way's median is
# taken over all its runs.
ROUNDS=${ROUNDS:-3}
PER_ROUND=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
WAYS=()
declare -A WAY
# site_entry_mode setuid|userns: the bed's entryMode, which each prolog and each shifter reads anew.
# Every way runs with setuid but shifter_prepared_userns (the userns copy of shifter is not setuid).
site_entry_mode() {
    sed -i '/^entryMode=/d' "$SITE_CONFIG"
    [ "$1" = userns ] && echo "entryMode=userns" >> "$SITE_CONFIG"
    return 0
}
declare -A MODE
time_it() { # NAME RUNNER... -- COMMAND: registers a way; run_rounds times them
    local name=$1; shift
    local runner=()
    while [ "$1" != -- ]; do runner+=("$1"); shift; done; shift
    WAYS+=("$name")
    local prefix=""
    [ ${#runner[@]} -gt 0 ] && prefix=$(printf '%q ' "${runner[@]}")
    WAY[$name]="$prefix hyperfine -N --runs $PER_ROUND --warmup 2 --export-json \"\$json\" $(printf '%q' "$*")"
    WAY[$name.check]="$prefix $(printf '%q ' "$@")"
}
run_rounds() {
    local round name json
    for round in $(seq "$ROUNDS"); do
        for name in "${WAYS[@]}"; do
            [ -n "${note[$name]:-}" ] && continue
            json=$OUT/$name.$round.json
            sleep 0.5   # what the way before left running (podman's clean-up) ends before this one is timed
            site_entry_mode "${MODE[$name]:-setuid}"
            if ! eval "${WAY[$name]}" >"$OUT/$name.log" 2>&1; then
                note[$name]=$(eval "${WAY[$name.check]}" 2>&1 | tail -1 || true)
                [ -n "${note[$name]}" ] || note[$name]="failed (see hyperfine)"
            fi
        done
    done
    site_entry_mode setuid
    for name in "${WAYS[@]}"; do
        if [ -n "${note[$name]:-}" ]; then median[$name]=""; continue; fi
        median[$name]=$(jq -s '[.[].results[0].times[]] | sort | if length % 2 == 1 then .[length / 2 | floor]
            else (.[length / 2 - 1] + .[length / 2]) / 2 end * 1000' "$OUT/$name".*.json)
    done
}

# A bare chroot into the loop-mounted image: the floor.
mount -o loop,ro "$squashfs" "$MNT"
time_it chroot -- chroot "$MNT" /bin/true

# The same chroot and exec from a Swift program linked as shifter is: the floor of an entry
# written in Swift (the static Swift runtime's start). Built with the flags of Package.swift's
# shifter-command.
SWIFTC=$(dirname "$(command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)")/swiftc
if "$SWIFTC" -O -static-executable -use-ld=lld -Xclang-linker -static-pie -Xlinker --gc-sections \
        -Xlinker -z -Xlinker now -Xlinker -z -Xlinker pack-relative-relocs \
        -o "$OUT/swift-chroot" "$BENCH_ROOT/bench/runtime/swift-chroot.swift" >"$OUT/swiftc.log" 2>&1; then
    time_it swift_chroot -- "$OUT/swift-chroot" "$MNT" /bin/true
else
    median[swift_chroot]=""; note[swift_chroot]="could not build: $(tail -1 "$OUT/swiftc.log")"
fi

# shifter building a private root (loop attach, overlay, /etc, site mounts, teardown by exit).
time_it shifter_private as_bench_user -- "$PREFIX/bin/shifter" --image="$IMAGE_BUSYBOX" /bin/true

# shifter entering the root the prolog prepared, inside a job on node n1.
start_prepared_job
time_it shifter_prepared nsenter -t "$(cat "$SLURM_DIR/slurmd-n1.pid")" -m env SLURM_JOB_ID="$JOB" SLURM_STEP_ID=0 \
    setpriv --reuid="$(id -u "$BED_USER")" --regid="$(id -g "$BED_USER")" --init-groups -- \
    "$PREFIX/bin/shifter" --image="id:${digest}" /bin/true
# The same entry with entryMode=userns: shifter without the setuid bit joins the namespaces that the
# prolog of a second job (started with entryMode=userns) made.
SETUID_JOB=$JOB
site_entry_mode userns
start_prepared_job
USERNS_JOB=$JOB
JOB=$SETUID_JOB
site_entry_mode setuid
install -m 0755 "$PREFIX/bin/shifter" "$OUT/shifter-userns"
MODE[shifter_prepared_userns]=userns
time_it shifter_prepared_userns nsenter -t "$(cat "$SLURM_DIR/slurmd-n1.pid")" -m env SLURM_JOB_ID="$USERNS_JOB" SLURM_STEP_ID=0 \
    setpriv --reuid="$(id -u "$BED_USER")" --regid="$(id -g "$BED_USER")" --init-groups -- \
    "$OUT/shifter-userns" --image="id:${digest}" /bin/true
# Other builds of shifter entering the same root, beside this one: COMPARE="NAME=PATH ..." (an
# earlier commit's build, or one linked another way); each is copied setuid root and reported as
# shifter_prepared_NAME.
COMPARED=()
for pair in ${COMPARE:-}; do
    name=${pair%%=*}
    install -m 4755 -o root "${pair#*=}" "$OUT/shifter-$name"
    time_it "shifter_prepared_$name" nsenter -t "$(cat "$SLURM_DIR/slurmd-n1.pid")" -m env SLURM_JOB_ID="$JOB" SLURM_STEP_ID=0 \
        setpriv --reuid="$(id -u "$BED_USER")" --regid="$(id -g "$BED_USER")" --init-groups -- \
        "$OUT/shifter-$name" --image="id:${digest}" /bin/true
    COMPARED+=("shifter_prepared_$name")
done
# The same entry, RUNS times with `shifter -v` (and each COMPARE build's, interleaved): the
# shell's clock just before it execs shifter against the time `shifter -v` gives for the first line
# of main (exec to main: the kernel's exec, the loader, the C and Swift runtimes' start), and
# shifter's own work from main to the exec of the command. Medians of each.
declare -A PHASED_BINARY=([shifter_prepared]=$PREFIX/bin/shifter)
for name in "${COMPARED[@]}"; do PHASED_BINARY[$name]=$OUT/shifter-${name#shifter_prepared_}; done
for _ in $(seq "$RUNS"); do
    for name in shifter_prepared "${COMPARED[@]}"; do
        nsenter -t "$(cat "$SLURM_DIR/slurmd-n1.pid")" -m env SLURM_JOB_ID="$JOB" SLURM_STEP_ID=0 \
            setpriv --reuid="$(id -u "$BED_USER")" --regid="$(id -g "$BED_USER")" --init-groups -- \
            bash -c 'echo "exec at $EPOCHREALTIME" >&2; exec "$0" -v --image="$1" /bin/true' "${PHASED_BINARY[$name]}" "id:${digest}" 2>&1 |
            awk '/^exec at / { exec = $3 } /\] main began at / { main = $(NF - 4) }
                 /\] exec / { own = substr($2, 2) } END { printf "%.3f %.3f\n", (main - exec) * 1000, own }' >>"$OUT/$name.phases"
    done
done
median_column() { # WAY COLUMN
    cut -d' ' -f"$2" "$OUT/$1.phases" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
median[shifter_exec_to_main]=$(median_column shifter_prepared 1)
INPROCESS_MS=$(median_column shifter_prepared 2)

# Charliecloud on a directory image (unprivileged user namespace).
rm -rf "$OUT/chdir"; unsquashfs -q -d "$OUT/chdir" "$squashfs" >/dev/null
mkdir -p "$OUT/chdir"/{dev,proc,sys,home,mnt}   # ch-run binds these; an OCI image need not have them
chown -R "$BED_USER" "$OUT/chdir"
time_it ch_run as_bench_user -- ch-run "$OUT/chdir" -- /bin/true

# crun on an OCI bundle made from the same directory.
mkdir -p "$OUT/bundle"; ln -sfn "$OUT/chdir" "$OUT/bundle/rootfs"
# Without cgroups, rlimits or a cgroup namespace, which this kind of VM refuses.
(cd "$OUT/bundle" && crun spec >/dev/null 2>&1 && jq '.process.args=["/bin/true"] | .process.terminal=false
    | del(.process.rlimits) | del(.linux.resources) | .linux.namespaces |= map(select(.type != "cgroup"))' \
    config.json > c && mv c config.json)
# crun (and podman, which runs crun) refuses a hybrid cgroup layout whose cgroup2 part holds a
# controller (hugetlb on this kind of VM): they run in a mount namespace of their own without that
# part, as on a host with cgroup v1 only. hyperfine runs inside that namespace, so making it is not
# timed.
cgroup_runner=()
if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
    cgroup_runner=(unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec "$@"' sh)
fi
time_it crun "${cgroup_runner[@]}" -- crun --cgroup-manager=disabled run --bundle "$OUT/bundle" bench-$$

# podman from local storage.
if ! command -v podman >/dev/null; then
    median[podman]=""; note[podman]="podman is not installed"
elif podman image exists shifter-bench 2>/dev/null || (cd "$OUT/chdir" && tar -c . | podman import - shifter-bench >/dev/null 2>&1); then
    # podman's default limits (a million open files and processes) are above what this VM allows.
    time_it podman "${cgroup_runner[@]}" -- podman run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
        shifter-bench /bin/true
else
    median[podman]=""; note[podman]="podman could not import the image"
fi

run_rounds
[ -n "${note[crun]:-}" ] && note[crun]="crun: ${note[crun]}"
[ -n "${note[podman]:-}" ] && [[ "${note[podman]}" != podman* ]] && note[podman]="podman: ${note[podman]}"

base=${median[chroot]}
# The rows of the table and of results.csv, in this order.
REPORTED=(chroot swift_chroot shifter_prepared shifter_prepared_userns "${COMPARED[@]}" shifter_exec_to_main shifter_private ch_run crun podman)
report() {
    echo "| way | median (ms) | × bare chroot | note |"
    echo "|---|---|---|---|"
    for name in "${REPORTED[@]}"; do
        local m=${median[$name]:-}
        if [ -n "$m" ]; then
            printf '| %s | %.2f | %.2f | %s |\n' "$name" "$m" "$(echo "$m / $base" | bc -l)" "${note[$name]:-}"
        else
            printf '| %s | did not run | | %s |\n' "$name" "${note[$name]:-}"
        fi
    done
    for name in "${COMPARED[@]}"; do
        [ -n "${median[$name]:-}" ] && [ -n "${median[shifter_prepared]:-}" ] && \
            printf '\nshifter (prepared) vs %s: %.3f× its time\n' "$name" "$(echo "${median[shifter_prepared]} / ${median[$name]}" | bc -l)"
    done
    if [ ${#COMPARED[@]} -gt 0 ]; then
        printf '\n| build | exec to main (ms) | main to exec (ms) |\n|---|---|---|\n'
        for name in shifter_prepared "${COMPARED[@]}"; do
            printf '| %s | %s | %s |\n' "$name" "$(median_column "$name" 1)" "$(median_column "$name" 2)"
        done
    fi
    if [ -n "${median[shifter_prepared_userns]:-}" ] && [ -n "${median[shifter_prepared]:-}" ]; then
        printf '\nentryMode=userns (shifter without the setuid bit, joining the job'"'"'s namespaces) vs setuid (chroot): %+.2f ms (goal: at most +0.3 ms)\n' \
            "$(echo "${median[shifter_prepared_userns]} - ${median[shifter_prepared]}" | bc -l)"
    fi
    if [ -n "${median[shifter_prepared_userns]:-}" ] && [ -n "${median[ch_run]:-}" ]; then
        printf '\nshifter (prepared, userns) vs ch_run: %.2f× faster\n' "$(echo "${median[ch_run]} / ${median[shifter_prepared_userns]}" | bc -l)"
    fi
    for peer in ch_run crun podman; do
        [ -n "${median[$peer]:-}" ] && [ -n "${median[shifter_prepared]:-}" ] && \
            printf '\nshifter (prepared) vs %s: %.2f× faster\n' "$peer" "$(echo "${median[$peer]} / ${median[shifter_prepared]}" | bc -l)"
    done
    if [ -n "${median[swift_chroot]:-}" ] && [ -n "${median[shifter_prepared]:-}" ]; then
        printf '\nThe goal is chroot + 1 ms. A Swift program that only does what chroot does (swift_chroot: linked as\n'
        printf 'shifter is, static-pie with the Swift runtime inside) takes chroot %+.2f ms: the start of the Swift runtime.\n' \
            "$(echo "${median[swift_chroot]} - $base" | bc -l)"
        printf 'shifter (prepared) takes swift_chroot %+.2f ms: its own work and its larger binary.\n' \
            "$(echo "${median[shifter_prepared]} - ${median[swift_chroot]}" | bc -l)"
    fi
    if [ -n "${INPROCESS_MS:-}" ] && [ -n "${median[shifter_prepared]:-}" ]; then
        printf '\nWhere the prepared entry'"'"'s %.2f ms go (medians of %s runs of `shifter -v`): from exec to the first line of\n' \
            "${median[shifter_prepared]}" "$RUNS"
        printf 'main (the row shifter_exec_to_main: the kernel'"'"'s exec of the %s MB static binary, relocation, the C and\n' \
            "$(( $(stat -c %s "$PREFIX/bin/shifter") / 1048576 ))"
        printf 'Swift runtimes'"'"' start) %.2f ms; shifter'"'"'s own work from main to the exec of the command (options,\n' \
            "${median[shifter_exec_to_main]}"
        printf 'configuration, image, the prepared root, environment) %.2f ms; the rest is the exec of the command and\n' "$INPROCESS_MS"
        printf 'hyperfine'"'"'s fork and wait, which the bare chroot pays as well (%.2f ms for all of it).\n' "$base"
    fi
    return 0
}
report | tee "$OUT/report.md"
# The same medians as CSV (bench/runtime/results.csv).
{
    echo "way,median_ms,x_bare_chroot,note"
    for name in "${REPORTED[@]}"; do
        m=${median[$name]:-}
        printf '%s,%s,%s,"%s"\n' "$name" "$m" "$([ -n "$m" ] && echo "$m / $base" | bc -l | xargs printf '%.3f')" \
            "$(tr -d '"' <<<"${note[$name]:-}")"
    done
} > "$BENCH_ROOT/bench/runtime/results.csv"
if [ "${WRITE:-0}" = 1 ]; then
    {
        echo "# Start-up benchmark"
        echo
        echo "Command: \`bench/runtime/run.sh\` (RUNS=$RUNS in $ROUNDS interleaved rounds of hyperfine, medians of all runs, /bin/true in the busybox test image)."
        echo "Machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%d)."
        echo
        cat "$OUT/report.md"
    } > "$BENCH_ROOT/bench/runtime/RESULTS.md"
fi
