#!/usr/bin/env bats
# CDI devices (--device) on the bed: a test vendor's spec in the nodes' spec directory (cdiSpecDirs),
# with fake device nodes, a fake driver library, variables, a mount, NVIDIA's symlink and ldcache
# hooks done natively, and a hook of its own that reads the container's OCI state. The fake nodes
# are made in /dev (character devices 1:3, as /dev/null), because a container's /dev is the node's.

load helpers
bats_require_minimum_version 1.5.0

SPEC_DIR=$BED_DIR/cdi
DRIVER=$BED_DIR/cdi-driver

setup_file() {
    for node in 0 1 ctl; do
        rm -f "/dev/shifter-cdi$node"
        mknod -m 666 "/dev/shifter-cdi$node" c 1 3
    done
    rm -rf "$DRIVER"
    mkdir -p "$DRIVER/lib" "$DRIVER/hooks"
    echo 'int example_driver_version(void) { return 1; }' > "$DRIVER/driver.c"
    gcc -shared -fPIC -Wl,-soname,libexample-driver.so.1 -o "$DRIVER/lib/libexample-driver.so.1.0" "$DRIVER/driver.c"
    # A hook of the vendor's own: it keeps the OCI state it is given on its standard input.
    printf '#!/bin/sh\ncat > %s/hook-state.json\necho "$EXAMPLE_HOOK_ENV" > %s/hook-env\n' "$DRIVER" "$DRIVER" > "$DRIVER/hooks/record-state"
    # One that notes when it ran: its hook name, the state's status, and whether the job's task
    # (a sleep, below) was still running then.
    cat > "$DRIVER/hooks/record-stage" <<'HOOK'
#!/bin/sh
status=$(sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
if pgrep -f "shifter sleep 2.5" > /dev/null; then task=task-alive; else task=no-task; fi
echo "$1 $status $task" >> "$(dirname "$0")/../stages"
HOOK
    chmod -R go-w "$DRIVER" && chmod 755 "$DRIVER/hooks/record-state" "$DRIVER/hooks/record-stage"
    cat > "$SPEC_DIR/example.yaml" <<SPEC
---
cdiVersion: 0.7.0
kind: example.com/gpu
containerEdits:
  env:
    - EXAMPLE_DRIVER=1
  deviceNodes:
    # Read-only for the job (its cgroup permissions, "r"), whatever the node's file allows.
    - path: /dev/shifter-cdictl
      permissions: r
  mounts:
    - hostPath: $DRIVER/lib/libexample-driver.so.1.0
      containerPath: /usr/lib/example/libexample-driver.so.1.0
      options: [ro, nosuid, nodev, rbind, rprivate]
    # The vendor's tools: here the node's ldconfig (static), so the container can list its cache.
    - hostPath: /sbin/ldconfig
      containerPath: /usr/local/sbin/ldconfig
      options: [ro, nosuid, nodev]
  hooks:
    - hookName: createContainer
      path: /usr/bin/nvidia-cdi-hook
      args: [nvidia-cdi-hook, create-symlinks, --link, "libexample-driver.so.1::/usr/lib/example/libexample.so"]
    - hookName: createContainer
      path: /usr/bin/nvidia-cdi-hook
      args: [nvidia-cdi-hook, update-ldcache, --folder, /usr/lib/example]
    - hookName: createContainer
      path: $DRIVER/hooks/record-state
      args: [record-state]
      env: [EXAMPLE_HOOK_ENV=from-the-spec]
      timeout: 10
    - hookName: poststart
      path: $DRIVER/hooks/record-stage
      args: [record-stage, poststart]
    - hookName: poststop
      path: $DRIVER/hooks/record-stage
      args: [record-stage, poststop]
    - hookName: createRuntime
      path: $DRIVER/hooks/record-stage
      args: [record-stage, createRuntime]
devices:
  - name: "0"
    containerEdits:
      env: [EXAMPLE_GPU=0]
      additionalGids: [4242]
      deviceNodes:
        # Its own mode, and the group the spec adds (416 is 0640).
        - path: /dev/shifter-cdi0
          type: c
          fileMode: 416
          gid: 4242
  - name: "1"
    containerEdits:
      env: [EXAMPLE_GPU=1]
      deviceNodes:
        - path: /dev/shifter-cdi1
SPEC
    chmod 644 "$SPEC_DIR/example.yaml"
}

teardown_file() {
    rm -f "$SPEC_DIR"/*.yaml "$SPEC_DIR"/*.json /dev/shifter-cdi0 /dev/shifter-cdi1 /dev/shifter-cdictl
    rm -rf "$DRIVER"
}

setup() { U=$BED_USER OUT=$(mktemp -d /tmp/shifter-cdi.XXXXXX) && chmod 777 "$OUT"; }
teardown() { rm -rf "$OUT" "$SPEC_DIR/broken.yaml" "$SPEC_DIR/open.json"; }

# What the job's container shows of the devices: their nodes, variables, the library and its link.
SHOW='for n in 0 1 ctl; do if [ -c /dev/shifter-cdi$n ]; then echo "node $n: device"; else echo "node $n: hidden"; fi; done
      echo "EXAMPLE_DRIVER=$EXAMPLE_DRIVER EXAMPLE_GPU=$EXAMPLE_GPU"
      ls /usr/lib/example; readlink /usr/lib/example/libexample.so
      /usr/local/sbin/ldconfig -p | grep libexample; id -G
      for n in 0 1 ctl; do [ -c /dev/shifter-cdi$n ] && stat -c "mode $n %a %u %g" /dev/shifter-cdi$n; done
      if echo x 2>/dev/null > /dev/shifter-cdictl; then echo "ctl: writable"; else echo "ctl: not writable"; fi'

@test "--device=example.com/gpu=0: device 0 only, the spec's variables, files, links and linker cache" {
    job=$(submit "$U" -w n1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --device=example.com/gpu=0 \
        --wrap "srun shifter sh -c '${SHOW//\$OUT/$OUT}'")
    wait_job "$job"
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    grep -qx "node 0: device" "$OUT/out"
    grep -qx "node 1: hidden" "$OUT/out"
    grep -qx "node ctl: device" "$OUT/out"
    grep -qx "EXAMPLE_DRIVER=1 EXAMPLE_GPU=0" "$OUT/out"
    # The group the device's spec adds (its nodes' group, on a real node) is among the task's; with
    # entryMode=userns it is not given (a namespace that mapped it would give it on the whole
    # node), and slurmd's log says so.
    if [ "$ENTRY_MODE" = userns ]; then
        ! grep -qE "^[0-9 ]*\b4242\b[0-9 ]*$" "$OUT/out" || false
        grep -qF "shifter: prolog: job $job: the job's CDI specs add groups 4242 to the user's, which entryMode=userns does not give" "$SLURM_DIR/log/slurmd-n1.log"
    else
        grep -qE "^[0-9 ]*\b4242\b[0-9 ]*$" "$OUT/out"
    fi
    # The library the spec mounts, the link its hook makes, and the soname link ldconfig made.
    [ "$(grep -c '^libexample' "$OUT/out")" -eq 4 ]
    grep -qx "libexample-driver.so.1.0" "$OUT/out"
    grep -qx "libexample.so" "$OUT/out"
    [ "$(grep -cx "libexample-driver.so.1" "$OUT/out")" -eq 2 ]
    # The container's linker cache (made by the node's ldconfig in the job's root) has the library.
    grep -qE "^\s+libexample-driver.so.1 \(.*\) => /usr/lib/example/libexample-driver.so.1$" "$OUT/out"
    # The vendor's own hook ran as the spec says: its variable, and the OCI state on its input.
    [ "$(cat "$DRIVER/hook-env")" = from-the-spec ]
    jq -e '.status == "creating" and (.bundle | length > 0)' "$DRIVER/hook-state.json"
    # The spec's node modes: device 0's own (0640, group 4242), the control node read-only for the
    # job; the node's own files unchanged. With entryMode=userns root and group 4242 are not mapped
    # in the job's namespace, and show as the overflow ids.
    local root=0 root_group=0 group=4242
    if [ "$ENTRY_MODE" = userns ]; then
        root=$(cat /proc/sys/kernel/overflowuid) root_group=$(cat /proc/sys/kernel/overflowgid) group=$root_group
    fi
    grep -qx "mode 0 640 $root $group" "$OUT/out"
    grep -qx "mode ctl 444 $root $root_group" "$OUT/out"
    grep -qx "ctl: not writable" "$OUT/out"
    [ "$(stat -c %a /dev/shifter-cdi0 /dev/shifter-cdictl | sort -u)" = 666 ]
    assert_nodes_clean "$job"
}

@test "a spec's hooks run at their point of the job's container's life: create, start, and stop in the epilog" {
    : > "$DRIVER/stages"
    job=$(submit "$U" -w n1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --device=example.com/gpu=1 --wrap "srun shifter sleep 2.5")
    wait_job "$job"
    cat "$DRIVER/stages"
    [ "$(job_state "$job")" = COMPLETED ]
    # Create before start, both before the task; stop after it ended, once, in the epilog.
    [ "$(cat "$DRIVER/stages")" = "createRuntime creating no-task
poststart running no-task
poststop stopped no-task" ]
    assert_nodes_clean "$job"
}

@test "--device=example.com/gpu=all sees both devices and both devices' variables" {
    job=$(submit "$U" -w n1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --device=example.com/gpu=all \
        --wrap "srun shifter sh -c '${SHOW//\$OUT/$OUT}'")
    wait_job "$job"
    cat "$OUT/out"
    [ "$(job_state "$job")" = COMPLETED ]
    grep -qx "node 0: device" "$OUT/out"
    grep -qx "node 1: device" "$OUT/out"
    # Both devices' variables were set; the later device's value is the one the task sees.
    grep -qx "EXAMPLE_DRIVER=1 EXAMPLE_GPU=1" "$OUT/out"
    assert_nodes_clean "$job"
}

@test "a job without --device sees none of the vendor's devices changed, and no variables" {
    job=$(submit "$U" -w n1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --wrap "srun shifter sh -c '${SHOW//\$OUT/$OUT}'")
    wait_job "$job"
    cat "$OUT/out"
    grep -qx "EXAMPLE_DRIVER= EXAMPLE_GPU=" "$OUT/out"
    ! grep -qE "^[0-9 ]*\b4242\b[0-9 ]*$" "$OUT/out" || false
    ! grep -q "libexample" "$OUT/out" || false
}

@test "unknown devices and kinds are refused at submission, naming them, and no job is queued" {
    before=$(squeue -h | wc -l)
    run -1 as_user "$U" sbatch -o /dev/null --image="$IMAGE_BUSYBOX" --device=example.com/gpu=7 --wrap true
    echo "$output"
    [[ "$output" == *'--device: device example.com/gpu=7: example.com/gpu has no device "7" (it has 0, 1, and all)'* ]]
    run -1 as_user "$U" sbatch -o /dev/null --image="$IMAGE_BUSYBOX" --device=vendor.example/fpga=0 --wrap true
    [[ "$output" == *"no CDI spec for vendor.example/fpga in $SPEC_DIR"* ]]
    run -1 as_user "$U" sbatch -o /dev/null --image="$IMAGE_BUSYBOX" --device=gpu0 --wrap true
    [[ "$output" == *'expected VENDOR/CLASS=NAME'* ]]
    run -1 as_user "$U" sbatch -o /dev/null --device=example.com/gpu=0 --wrap true
    [[ "$output" == *"--device need --image"* ]]
    [ "$(squeue -h | wc -l)" -eq "$before" ]
}

@test "a --device too long for the prolog's environment is refused at submission; no node is drained" {
    # Slurm would hand the value to every node's prolog in one variable, which the kernel refuses
    # over 128 KiB: the prolog would not start and the node would be drained.
    long=$(printf 'example.com/gpu=0,%.0s' $(seq 7280))
    run -1 as_user "$BED_USER2" sbatch -w n2 -o /dev/null --image="$IMAGE_BUSYBOX" --device="${long%,}" --wrap true
    echo "${output:0:300}"
    [[ "$output" == *"--device: the value is 131039 bytes, more than the 16384 an option may have"* ]]
    [ -z "$(sinfo -h -n n2 -t drain,drained,draining -o %N)" ]
}

@test "a malformed spec is named when its devices are asked for; the other specs still serve" {
    printf 'cdiVersion: 0.6.0\nkind: broken.example/gpu\ndevices:\n  - name: b0\n    containerEdits: {env: [A=1]\n' > "$SPEC_DIR/broken.yaml"
    chmod 644 "$SPEC_DIR/broken.yaml"
    run -1 as_user "$U" sbatch -o /dev/null --image="$IMAGE_BUSYBOX" --device=broken.example/gpu=b0 --wrap true
    echo "$output"
    [[ "$output" == *"CDI spec $SPEC_DIR/broken.yaml: not valid YAML: line "* ]]
    run as_user "$U" sbatch -o /dev/null --image="$IMAGE_BUSYBOX" --device=example.com/gpu=0 --wrap true
    [ "$status" -eq 0 ]
    wait_job "${output##* }"
}

@test "a spec others can write is refused, named, and its devices are not given" {
    printf '{"cdiVersion": "0.6.0", "kind": "open.example/gpu", "devices": [{"name": "o0", "containerEdits": {"deviceNodes": [{"path": "/dev/shifter-cdi1"}]}}]}' \
        > "$SPEC_DIR/open.json"
    chmod 666 "$SPEC_DIR/open.json"
    run -1 as_user "$U" sbatch -o /dev/null --image="$IMAGE_BUSYBOX" --device=open.example/gpu=o0 --wrap true
    echo "$output"
    [[ "$output" == *"CDI spec $SPEC_DIR/open.json: refused: writable by everyone (mode 666); make it root's alone (chmod go-w)"* ]]
    # A spec made writable after the job was accepted is refused by the prolog too: the job is
    # held while the spec changes, and its steps fail with the reason.
    chmod 644 "$SPEC_DIR/open.json"
    job=$(submit "$U" -H -w n1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --device=open.example/gpu=o0 --wrap "srun shifter true")
    chmod 666 "$SPEC_DIR/open.json"
    scontrol release "$job"
    wait_job "$job"
    cat "$OUT/out"
    grep -q "open.json: refused: writable by everyone" "$OUT/out"
}

@test "srun inside a job cannot change the job's devices" {
    job=$(submit "$U" -w n1 -o "$OUT/out" --image="$IMAGE_BUSYBOX" --device=example.com/gpu=0 \
        --wrap "srun --device=example.com/gpu=1 shifter true; echo srun-status=\$?; srun --device=example.com/gpu=0 shifter true; echo same-status=\$?")
    wait_job "$job"
    cat "$OUT/out"
    grep -q "give --device to sbatch or salloc, not to srun inside the job" "$OUT/out"
    grep -qx "srun-status=1" "$OUT/out"
    grep -qx "same-status=0" "$OUT/out"
}
