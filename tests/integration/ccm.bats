#!/usr/bin/env bats
# sshd in the container (--ccm, plugstack enable_ccm=1, which the bed sets): the prolog starts the
# job's sshd in the job's container on each node, as the user; ssh from one node of the job lands
# in the same image on the others. The bed's nodes share one network, so each node's sshd has a
# port of its own (sshNodePorts).

load helpers
bats_require_minimum_version 1.5.0

setup() {
    U=$BED_USER
    OUT=$(mktemp -d /tmp/shifter-ccm.XXXXXX)
    chmod 777 "$OUT"
    SSH=$(sed -n 's/^sshPath=//p' /etc/shifter/udiRoot.conf)/bin/ssh
    PORT_N2=$(sed -n 's/^sshNodePorts=.*n2=127.0.0.1:\([0-9]*\).*/\1/p' /etc/shifter/udiRoot.conf)
    PORT_N1=$(sed -n 's/^sshNodePorts=.*n1=127.0.0.1:\([0-9]*\).*/\1/p' /etc/shifter/udiRoot.conf)
    CGROUP2=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
}

teardown() {
    # A job the test left running holds its nodes for the next test, and a squatting sshd its port.
    [ -p "$OUT/go" ] && timeout 5 sh -c "echo go > '$OUT/go'" 2>/dev/null || true
    [ -p "$OUT/go2" ] && timeout 5 sh -c "echo go > '$OUT/go2'" 2>/dev/null || true
    [ -f "$OUT/shell2.pid" ] && kill "$(cat "$OUT/shell2.pid")" 2>/dev/null || true
    [ -f "$OUT/squatter.pid" ] && kill "$(cat "$OUT/squatter.pid")" 2>/dev/null || true
    [ -f "$OUT/reader.pid" ] && kill "$(cat "$OUT/reader.pid")" 2>/dev/null || true
    [ -n "${job:-}" ] && scancel "$job" 2>/dev/null && wait_job "$job" || true
    [ -n "${job2:-}" ] && scancel "$job2" 2>/dev/null && wait_job "$job2" || true
    rm -rf "$OUT"
}

# The sshd processes of the job's user.
sshd_of_user() { pgrep -u "$U" -f "$(dirname "$SSH")/sshd" || true; }

@test "ccm: ssh from one node of a --ccm job reaches the job's container on every other node, as the user; no other user logs in; nothing is left" {
    [ -n "$PORT_N2" ] || skip "the bed's udiRoot.conf has no sshNodePorts"
    local uid
    uid=$(id -u "$U")
    # What each node's sshd runs for the ssh from n1 (the host's /tmp is the container's too).
    cat >"$OUT/remote.sh" <<'SCRIPT'
echo "$SLURMD_NODENAME $(head -1 /etc/os-release) uid=$(id -u) job=$SLURM_JOB_ID"
SCRIPT
    cat >"$OUT/from-n1.sh" <<SCRIPT
echo "task sees keys: \$(env | grep -c SHIFTER_SSH)"
for node in n2 n3 n4; do ssh \$node sh $OUT/remote.sh || echo "ssh \$node failed: \$?"; done
SCRIPT
    mkfifo -m 666 "$OUT/go"
    cat >"$OUT/job.sh" <<SCRIPT
#!/bin/sh
echo "batch script sees keys: \$(env | grep -c SHIFTER_SSH)"
srun -N1 -w n1 shifter sh $OUT/from-n1.sh
echo ready
cat $OUT/go >/dev/null
SCRIPT
    chmod 644 "$OUT"/*.sh
    job=$(submit "$U" -N4 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --ccm "$OUT/job.sh")
    wait_for_line "$OUT/out" ready
    cat "$OUT/out"
    for node in n2 n3 n4; do
        grep -qxF "$node NAME=\"Shifter test busybox\" uid=$uid job=$job" "$OUT/out"
    done
    ! grep -q failed "$OUT/out" || false
    # The job's private keys reached the prolog, not the job's environment.
    grep -qxF "batch script sees keys: 0" "$OUT/out"
    grep -qxF "task sees keys: 0" "$OUT/out"
    # One sshd a node, the user's own, chrooted into the job's root (userns: in the job's
    # namespaces, whose / is the root, mapping the user alone), with no way back to privilege.
    [ "$(sshd_of_user | wc -l)" -eq 4 ]
    local pid
    for pid in $(sshd_of_user); do
        if [ "$ENTRY_MODE" = userns ]; then
            [ "$(readlink "/proc/$pid/root")" = / ]
            [ "$(awk '{ print $1, $2, $3 }' "/proc/$pid/uid_map")" = "$uid $uid 1" ]
        else
            [ "$(readlink "/proc/$pid/root")" = "$BED_DIR/udiMount/job-$job/root" ]
        fi
        [ "$(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' "/proc/$pid/status")" = "$uid $uid $uid $uid" ]
        [ "$(awk '$1 == "NoNewPrivs:" { print $2 }' "/proc/$pid/status")" = 1 ]
        [ "$(awk '$1 == "CapBnd:" { print $2 }' "/proc/$pid/status")" = 0000000000000000 ]
    done
    # Another user, with a key of their own, gets in neither as the job's user nor as themselves.
    local other=$OUT/other
    install -d -m 700 -o "$BED_USER2" "$other"
    as_user "$BED_USER2" "$(dirname "$SSH")/ssh-keygen" -q -t ed25519 -N "" -f "$other/key"
    for login in "$U" "$BED_USER2"; do
        run as_user "$BED_USER2" "$SSH" -F /dev/null -p "$PORT_N2" -i "$other/key" -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile=/dev/null -o BatchMode=yes "$login@127.0.0.1" id
        echo "$login: $output"
        [ "$status" -eq 255 ]
        [[ "$output" == *"Permission denied (publickey)"* ]]
    done
    echo go >"$OUT/go"
    wait_job "$job"
    [ "$(job_state "$job")" = COMPLETED ]
    # The epilog stopped every sshd of the job, and its ports are free again.
    [ -z "$(sshd_of_user)" ]
    ! ss -Hltn "sport = :$PORT_N2" | grep -q . || false
    assert_nodes_clean "$job"
}

@test "ccm: ssh checks each node's sshd against the job's host key: another sshd on the port is refused" {
    [ -n "$PORT_N2" ] || skip "the bed's udiRoot.conf has no sshNodePorts"
    # Another user's sshd holds n2's port before the job starts: the job's sshd on n2 cannot
    # listen, the prolog on n2 fails with the reason, and n1's ssh to n2 meets the impostor, whose
    # host key is not the job's.
    local squat=$OUT/squat
    install -d -m 700 -o "$BED_USER2" "$squat"
    as_user "$BED_USER2" "$(dirname "$SSH")/ssh-keygen" -q -t ed25519 -N "" -f "$squat/host"
    printf 'Port %s\nHostKey %s/host\nUsePAM no\nPidFile none\n' "$PORT_N2" "$squat" >"$squat/config"
    chown "$BED_USER2" "$squat/config"
    runuser -u "$BED_USER2" -- "$(dirname "$SSH")/sshd" -D -e -f "$squat/config" 2>"$OUT/squat.log" &
    local squatter=$!
    echo "$squatter" >"$OUT/squatter.pid"
    local deadline=$((SECONDS + 30))
    until grep -q "Server listening" "$OUT/squat.log"; do
        ((SECONDS < deadline)) || { cat "$OUT/squat.log"; kill "$squatter"; false; }
        sleep 0.1
    done
    cat >"$OUT/job.sh" <<SCRIPT
#!/bin/sh
srun -N1 -w n1 shifter $SSH n2 true
echo "ssh exit \$?"
SCRIPT
    chmod 644 "$OUT/job.sh"
    job=$(submit "$U" -N2 -w n1,n2 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --ccm "$OUT/job.sh")
    wait_job "$job"
    kill "$squatter"
    wait "$squatter" || true
    cat "$OUT/out"
    grep -q "Host key verification failed" "$OUT/out"
    grep -qxF "ssh exit 255" "$OUT/out"
    # n2's prolog said why its sshd did not start.
    grep -q "job $job: sshd did not start on port $PORT_N2: .*Address already in use" "$SLURM_DIR/log/slurmd-n2.log"
    assert_nodes_clean "$job"
}

@test "ccm: a process started over ssh that keeps forking and exiting ends with the job, and another user's job and shell on the node go on; no mount or loop device is left, the node stays in service" {
    [ -n "$PORT_N1" ] || skip "the bed's udiRoot.conf has no sshNodePorts"
    [ -n "$CGROUP2" ] || skip "no cgroup2 hierarchy is mounted on this host"
    # Each generation starts the next in the background and exits a moment later: its pid
    # changes faster than a scan of /proc can follow it. Every generation holds the write end of
    # the fifo "alive", so its reader here meets the end only once the last of them has gone.
    cat >"$OUT/hop.sh" <<'SCRIPT'
i=0
while [ $i -lt 500 ]; do i=$((i + 1)); done
sh "$0" &
SCRIPT
    mkfifo -m 666 "$OUT/go" "$OUT/alive"
    timeout 120 cat "$OUT/alive" >"$OUT/alive.out" 2>/dev/null &
    echo $! >"$OUT/reader.pid"
    cat >"$OUT/job.sh" <<SCRIPT
#!/bin/sh
srun -N1 -w n1 shifter $SSH n1 "exec >$OUT/alive 2>/dev/null </dev/null; echo started; sh $OUT/hop.sh"
echo "ssh exit \$?"
echo ready
cat $OUT/go >/dev/null
SCRIPT
    chmod 644 "$OUT"/*.sh
    job=$(submit "$U" -N1 -w n1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --ccm "$OUT/job.sh")
    wait_for_line "$OUT/out" ready
    cat "$OUT/out"
    grep -qxF "ssh exit 0" "$OUT/out"
    grep -qxF started "$OUT/alive.out"
    # The job's sshd is in the job's group on n1, and the chain, which outlived its session, with it.
    local group=$CGROUP2/shifter/job-$job-n1 pid
    for pid in $(sshd_of_user); do grep -qxF "0::/shifter/job-$job-n1" "/proc/$pid/cgroup"; done
    [ "$(wc -l <"$group/cgroup.procs")" -ge 2 ]
    # Beside it on n1, the other user: a job of their own, whose step waits, and a process of a
    # shell. The epilog's kill of the first job's group must leave both alone.
    mkfifo -m 666 "$OUT/go2"
    cat >"$OUT/job2.sh" <<SCRIPT
#!/bin/sh
srun -N1 -n1 -w n1 shifter sh -c 'echo step2 running; cat $OUT/go2 >/dev/null; echo step2 done'
SCRIPT
    chmod 644 "$OUT/job2.sh"
    job2=$(submit "$BED_USER2" -N1 -n1 -w n1 -o "$OUT/out2" --image="$IMAGE_BUSYBOX" "$OUT/job2.sh")
    wait_for_line "$OUT/out2" "step2 running"
    mkfifo -m 666 "$OUT/shell2"
    as_user "$BED_USER2" sh -c "echo \$\$ >$OUT/shell2; exec sleep 600" </dev/null >/dev/null 2>&1 3>&- &
    cat "$OUT/shell2" >"$OUT/shell2.pid"
    echo go >"$OUT/go"
    wait_job "$job"
    [ "$(job_state "$job")" = COMPLETED ]
    # The reader met the fifo's end: no process of the chain is left.
    wait "$(cat "$OUT/reader.pid")"
    [ -z "$(sshd_of_user)" ]
    [ ! -e "$group" ]
    # The other user's step and process lived through it, and the step ends as it would have.
    [ "$(squeue -h -j "$job2" -o %T)" = RUNNING ]
    [ "$(stat -c %U "/proc/$(cat "$OUT/shell2.pid")")" = "$BED_USER2" ]
    echo go >"$OUT/go2"
    wait_job "$job2"
    cat "$OUT/out2"
    [ "$(job_state "$job2")" = COMPLETED ]
    grep -qxF "step2 done" "$OUT/out2"
    assert_nodes_clean "$job"
    assert_nodes_clean "$job2"
    # The epilog counted the node clean, and it was: in service, not drained.
    [ "$(sinfo -h -n n1 -o %t)" = idle ]
    ! grep -q "shifter: epilog: job $job:" "$SLURM_DIR/log/slurmd-n1.log" || false
}

@test "ccm: another user's flood of connections to a job's sshd fills only the sshd log's own capped tmpfs, not the container's writable layer" {
    [ -n "$PORT_N1" ] || skip "the bed's udiRoot.conf has no sshNodePorts"
    mkfifo -m 666 "$OUT/go"
    # Free blocks of the container's / (the overlay reports its writable layer) before and after.
    cat >"$OUT/job.sh" <<SCRIPT
#!/bin/sh
srun -N1 -w n1 shifter stat -f -c %a / >$OUT/before
echo ready
cat $OUT/go >/dev/null
srun -N1 -w n1 shifter stat -f -c %a / >$OUT/after
echo done
SCRIPT
    chmod 644 "$OUT/job.sh"
    job=$(submit "$U" -N1 -w n1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --ccm "$OUT/job.sh")
    wait_for_line "$OUT/out" ready
    local log=$BED_DIR/udiMount/job-$job/sshd-log
    # The log's tmpfs: 1 MiB, root's only.
    [ "$(on_node n1 stat -f -c '%t %b %S' "$log")" = "1021994 256 4096" ]
    [ "$(on_node n1 stat -c '%a %U' "$log")" = "700 root" ]
    # 300 connections of junk from the other user, 25 at a time, each until sshd hangs up (or
    # 10 s); the whole flood within 120 s.
    cat >"$OUT/flood.py" <<'PY'
import socket, sys, time
port, deadline = int(sys.argv[1]), time.monotonic() + 120
closed = 0
for batch in range(12):
    sockets = []
    for _ in range(25):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            continue
        sockets.append(s)
        try:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"x" * 200 + b"\r\n")
        except OSError:
            pass
    for s in sockets:
        try:
            while s.recv(4096):
                pass
            closed += 1
        except OSError:
            pass
        s.close()
    if time.monotonic() > deadline:
        break
print("closed by sshd:", closed)
PY
    chmod 644 "$OUT/flood.py"
    run as_user "$BED_USER2" timeout 150 /usr/bin/python3 "$OUT/flood.py" "$PORT_N1"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"closed by sshd: "* ]]
    # sshd wrote about each connection before it hung up: the flood reached the log.
    [ "$(on_node n1 stat -c %s "$log/sshd.log")" -gt 10000 ]
    echo go >"$OUT/go"
    wait_job "$job"
    cat "$OUT/out"
    grep -qxF done "$OUT/out"
    echo "free blocks of the writable layer: $(cat "$OUT/before") before, $(cat "$OUT/after") after"
    [ -s "$OUT/before" ]
    [ "$(cat "$OUT/before")" = "$(cat "$OUT/after")" ]
    assert_nodes_clean "$job"
}

@test "ccm: --ccm needs --image, and says so at submission" {
    run as_user "$U" sbatch --ccm --wrap true
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"shifter: submit: --volume, --module, --ccm and --device need --image"* ]]
}
