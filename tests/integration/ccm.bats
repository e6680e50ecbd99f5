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
}

teardown() {
    # A job the test left running holds its nodes for the next test, and a squatting sshd its port.
    [ -p "$OUT/go" ] && timeout 5 sh -c "echo go > '$OUT/go'" 2>/dev/null || true
    [ -f "$OUT/squatter.pid" ] && kill "$(cat "$OUT/squatter.pid")" 2>/dev/null || true
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
    # One sshd a node, the user's own, chrooted into the job's root, with no way back to privilege.
    [ "$(sshd_of_user | wc -l)" -eq 4 ]
    local pid
    for pid in $(sshd_of_user); do
        [ "$(readlink "/proc/$pid/root")" = "$BED_DIR/udiMount/job-$job/root" ]
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

@test "ccm: --ccm needs --image, and says so at submission" {
    run as_user "$U" sbatch --ccm --wrap true
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"shifter: submit: --volume, --module and --ccm need --image"* ]]
}
