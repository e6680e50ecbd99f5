#!/usr/bin/env bats
# What administrators get on a node: shifter-admin (list, check, cleanup) and the node metrics
# that the prolog and epilog keep for node_exporter's textfile collector.

load helpers
bats_require_minimum_version 1.5.0

ADMIN=${SHIFTER_ADMIN:-$SHIFTER_PREFIX/sbin/shifter-admin}

setup() {
    U=$BED_USER
    OUT=$(mktemp -d /tmp/shifter-admin.XXXXXX)
    chmod 777 "$OUT"
}

teardown() {
    [ -f "$OUT/exporter.pid" ] && kill "$(cat "$OUT/exporter.pid")" 2>/dev/null || true
    rm -rf "$OUT"
    rm -f "$BED_DIR/cache/shifter-job-4000000-"* "$BED_DIR/cache/shifter-private-a1b2c3.xfs" "$BED_DIR/cache/shifter-private-d4e5f6.xfs"
}

metrics_file() { echo "$BED_DIR/metrics/shifter-$1.prom"; }

@test "node metrics: each node's prolog and epilog keep a Prometheus file, which node_exporter reads" {
    local file before_ok before_clean during
    file=$(metrics_file n1)
    before_ok=$(prom_sample "$file" shifter_prolog_runs_total 'node="n1",result="success"')
    before_clean=$(prom_sample "$file" shifter_epilog_runs_total 'node="n1",result="clean"')
    job=$(submit "$U" -w n1 -N1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --volume="/x:/scratch:perNodeCache=size=512m" \
        --wrap "cat $file > $OUT/during; srun shifter true")
    wait_job "$job"
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    # While the job ran, the file counted its root and its cache.
    during=$OUT/during
    cat "$during"
    [ "$(prom_sample "$during" shifter_prolog_runs_total 'node="n1",result="success"')" -eq $((before_ok + 1)) ]
    [ "$(prom_sample "$during" shifter_job_roots 'node="n1"')" -ge 1 ]
    [ "$(prom_sample "$during" shifter_per_node_caches 'node="n1"')" -ge 1 ]
    [ "$(prom_sample "$during" shifter_per_node_cache_bytes 'node="n1"')" -ge 536870912 ]
    for phase in resolve image etc mounts cache record; do
        grep -qE "^shifter_prolog_last_phase_seconds\{node=\"n1\",phase=\"$phase\"\} [0-9]+\.[0-9]{6}$" "$during"
    done
    # After the epilog: one more clean epilog, and no root or cache left on the node.
    cat "$file"
    [ "$(prom_sample "$file" shifter_epilog_runs_total 'node="n1",result="clean"')" -eq $((before_clean + 1)) ]
    [ "$(prom_sample "$file" shifter_job_roots 'node="n1"')" -eq 0 ]
    [ "$(prom_sample "$file" shifter_per_node_cache_bytes 'node="n1"')" -eq 0 ]
    [ "$(stat -c '%U %a' "$file")" = "root 644" ]
    ! ls -A "$BED_DIR/metrics" | grep -q '\.tmp$' || false
    # node_exporter's textfile collector takes the files as they are.
    command -v prometheus-node-exporter >/dev/null || skip "prometheus-node-exporter is not installed"
    port=$(free_port)
    prometheus-node-exporter --collector.disable-defaults --collector.textfile \
        --collector.textfile.directory="$BED_DIR/metrics" --web.listen-address="127.0.0.1:$port" \
        >"$OUT/exporter.log" 2>&1 &
    echo $! >"$OUT/exporter.pid"
    local deadline=$((SECONDS + 60))
    until curl -sf "http://127.0.0.1:$port/metrics" >"$OUT/scrape"; do
        ((SECONDS < deadline)) || { cat "$OUT/exporter.log"; false; }
        kill -0 "$(cat "$OUT/exporter.pid")" || { cat "$OUT/exporter.log"; false; }
        sleep 0.3
    done
    grep -qx 'node_textfile_scrape_error 0' "$OUT/scrape"
    grep -qx "shifter_prolog_runs_total{node=\"n1\",result=\"success\"} $((before_ok + 1))" "$OUT/scrape"
    grep -qx 'shifter_job_roots{node="n1"} 0' "$OUT/scrape"
}

@test "shifter-admin list shows a running job's root; check finds nothing left while it runs; only root may run it" {
    job=$(submit "$U" -w n2 -N1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --volume="/x:/scratch:perNodeCache=size=512m" \
        --wrap "echo started; srun shifter sleep 300")
    wait_for_line "$OUT/out" started
    run on_node n2 "$ADMIN" list
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" =~ ^JOB\ +STATUS\ +UID\ +IMAGE\ +MOUNTS\ +CACHES\ +ENTRY$ ]]
    # ENTRY: the namespaces the job's tasks join (entryMode=userns), or none.
    local entry=-
    [ "$ENTRY_MODE" = userns ] && entry=userns
    grep -qE "^$job +ready +$(id -u "$U") +sha256:[0-9a-f]{12} +[1-9][0-9]* +1 \(512M\) +$entry$" <<<"$output"
    run on_node n2 "$ADMIN" check
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "nothing left behind" ]
    # With the job counted as ended, check names its root and the command that removes it.
    run on_node n2 "$ADMIN" check --active ""
    [ "$status" -eq 1 ]
    grep -qxF "job $job has ended but its root is ready here with $(on_node n2 grep -c "job-$job" /proc/self/mountinfo) mount(s); run 'shifter-admin cleanup --job $job'" <<<"$output"
    # Users are told it is root's tool, and learn nothing of the roots.
    run --separate-stderr runuser -u "$U" -- "$ADMIN" list
    [ "$status" -eq 1 ]
    [ "$stderr" = "shifter-admin: list: must be run as root (the job roots and their records belong to root)" ]
    [ -z "$output" ]
    run --separate-stderr on_node n2 "$ADMIN" cleanup
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"name the job with --job JOBID"* ]]
    scancel "$job"
    wait_job "$job"
    assert_nodes_clean "$job"
}

@test "shifter-admin cleanup on one node stops the job's processes there only, where several slurmd share the host" {
    # The bed's nodes share one kernel, each in a mount namespace of its own: the job's root has the
    # same path on both nodes, and only the node cleaned up may lose its processes.
    job=$(submit "$U" -N2 -w n1,n2 -o "$OUT/out" --image="$IMAGE_BUSYBOX" \
        --wrap 'srun -N2 --ntasks-per-node=1 shifter sh -c "echo started \$SLURMD_NODENAME; exec sleep 300"')
    wait_for_line "$OUT/out" "started n1"
    wait_for_line "$OUT/out" "started n2"
    # The tasks' processes (the shell that printed "started", or the sleep it became: one pid).
    local pid sleepers=()
    for pid in $(pgrep -u "$U" -f "exec sleep 300|^sleep 300"); do
        { in_job_container "$pid" "$job" n1 || in_job_container "$pid" "$job" n2; } && sleepers+=("$pid")
    done
    [ "${#sleepers[@]}" -eq 2 ]
    run on_node n1 "$ADMIN" cleanup --job "$job"
    echo "$output"
    [ "$status" -eq 0 ]
    local alive=()
    # A killed process may stay a zombie a moment, its root already gone.
    for pid in "${sleepers[@]}"; do readlink "/proc/$pid/root" >/dev/null 2>&1 && alive+=("$pid"); done
    [ "${#alive[@]}" -eq 1 ]
    # The one left is n2's.
    in_job_container "${alive[0]}" "$job" n2
    scancel "$job"
    wait_job "$job"
    assert_nodes_clean "$job"
}

@test "shifter-admin finds the cache file of a killed shifter run outside any job once it is old, and removes it" {
    local old=$BED_DIR/cache/shifter-private-a1b2c3.xfs fresh=$BED_DIR/cache/shifter-private-d4e5f6.xfs
    truncate -s 1M "$old" "$fresh"
    touch -d '1 hour ago' "$old"
    run on_node n3 "$ADMIN" check
    echo "$output"
    [ "$status" -eq 1 ]
    grep -qxF "$old (1M) is the per-node cache file of a shifter run outside any job that was killed while it formatted it; run 'shifter-admin cleanup --private-caches'" <<<"$output"
    [ "$(grep -c "$fresh" <<<"$output")" -eq 0 ]
    run on_node n3 "$ADMIN" cleanup --private-caches
    echo "$output"
    rm -f "$fresh"
    [ "$status" -eq 0 ]
    [ "$output" = "removed $old" ]
    [ ! -e "$old" ]
}

@test "shifter-admin check finds an ended job's abandoned cache file and cleanup removes it" {
    local file=$BED_DIR/cache/shifter-job-4000000-a1b2c3.xfs
    truncate -s 1M "$file"
    run on_node n3 "$ADMIN" check
    echo "$output"
    [ "$status" -eq 1 ]
    grep -qxF "job 4000000 has ended but its per-node cache file $file (1M) is left; run 'shifter-admin cleanup --job 4000000'" <<<"$output"
    run on_node n3 "$ADMIN" cleanup --job 4000000
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "job 4000000: clean" ]
    [ ! -e "$file" ]
    run on_node n3 "$ADMIN" check
    [ "$status" -eq 0 ]
}
