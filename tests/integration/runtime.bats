#!/usr/bin/env bats
# The setuid `shifter` on a node, run by a regular user: functional behaviour and security. With
# entryMode=userns each run is the task of a job of its own (see shifter_as).

load helpers
bats_require_minimum_version 1.5.0

setup() {
    U=$BED_USER
}

teardown() {
    assert_no_leaks
}

@test "id inside the container shows the user's uid, gid and groups" {
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" sh -c 'id -u; id -g; id -G | tr " " "\n" | sort -n | tr "\n" " "; echo; id -un; id -gn'
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "$(id -u "$U")" ]
    [ "${lines[1]}" = "$(id -g "$U")" ]
    [ "${lines[2]}" = "$(id -G "$U" | tr ' ' '\n' | sort -n | tr '\n' ' ')" ]
    [ "${lines[3]}" = "$U" ]
    [ "${lines[4]}" = "$(id -gn "$U")" ]
    # The user's supplementary group is in the container's /etc/group with its name.
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" grep '^shiftergrp:' /etc/group
    [ "$status" -eq 0 ]
}

@test "32 shifter runs at once, each building its own root, all get a loop device" {
    # They all ask the kernel for a free loop device at the same moment, and it names the same one
    # to all of them: each must try again until it binds one.
    local out i failed=0
    out=$(mktemp -d /tmp/shifter-many.XXXXXX)
    for i in $(seq 32); do
        shifter_as "$U" --image="$IMAGE_BUSYBOX" sh -c 'head -1 /etc/os-release' >"$out/$i" 2>&1 &
    done
    wait
    for i in $(seq 32); do
        grep -qxF 'NAME="Shifter test busybox"' "$out/$i" || { failed=$((failed + 1)); cat "$out/$i"; }
    done
    rm -rf "$out"
    [ "$failed" -eq 0 ]
}

@test "the container process has no capabilities and no_new_privs set" {
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" grep -E '^(CapEff|CapPrm|CapBnd|CapInh|CapAmb|NoNewPrivs):' /proc/self/status
    [ "$status" -eq 0 ]
    echo "$output"
    [ "$(grep -c ':[[:space:]]*0000000000000000$' <<<"$output")" -eq 5 ]
    grep -qE '^NoNewPrivs:[[:space:]]+1$' <<<"$output"
}

@test "a setuid-root binary in the image does not grant root" {
    [ "$(stat -c %a "$IMAGE_STORE" >/dev/null; echo ok)" = ok ]
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" sh -c 'ls -l /opt/suid/id; /opt/suid/id -u; /opt/suid/id -g'
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == -rwsr-xr-x* ]]
    [ "${lines[1]}" = "$(id -u "$U")" ]
    [ "${lines[2]}" = "$(id -g "$U")" ]
}

@test "a device node shipped in the image is not usable" {
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" sh -c 'ls -l /opt/devices/null && echo x > /opt/devices/null'
    [ "$status" -ne 0 ]
    [[ "$output" == crw-rw-rw-* ]]
    [[ "$output" == *"Permission denied"* ]]
}

@test "the image's files, environment and the site's variables are there" {
    run shifter_as "$U" --image="$IMAGE_LAYERED" sh -c 'echo "$FOO|$GREETING|$SHIFTER_RUNTIME|$SHIFTER_SITE"; cat /data/keep/a; cat /etc/os-release | head -1'
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "bar|hello world|1|testbed" ]
    [ "${lines[1]}" = "kept file" ]
    [[ "${lines[2]}" == *"Shifter test busybox"* ]]
}

@test "--env and --env-file override the image, --clearenv drops the host environment" {
    printf '# comment\n\nFOO=from-file\nFILEONLY=yes\n' > /tmp/shifter-envfile
    chmod 644 /tmp/shifter-envfile
    run shifter_as "$U" --image="$IMAGE_LAYERED" --env-file=/tmp/shifter-envfile -e FOO=cli sh -c 'echo "$FOO $FILEONLY"'
    [ "$output" = "cli yes" ]
    run shifter_as "$U" --image="$IMAGE_LAYERED" --env-file=/tmp/shifter-envfile sh -c 'echo "$FOO"'
    [ "$output" = "from-file" ]
    HOSTVAR=set run shifter_as "$U" --image="$IMAGE_LAYERED" sh -c 'echo "${HOSTVAR:-unset}"'
    [ "$output" = "set" ]
    HOSTVAR=set run shifter_as "$U" --image="$IMAGE_LAYERED" -E sh -c 'echo "${HOSTVAR:-unset} $FOO"'
    [ "$output" = "unset bar" ]
    rm -f /tmp/shifter-envfile
}

@test "--env-file is read with the user's rights, not root's" {
    echo 'SECRET=root-only' > /tmp/shifter-rootenv; chmod 600 /tmp/shifter-rootenv
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" --env-file=/tmp/shifter-rootenv sh -c 'echo "$SECRET"'
    rm -f /tmp/shifter-rootenv
    [ "$status" -eq 1 ]
    [[ "$output" == "shifter: --env-file: "*"/tmp/shifter-rootenv"*"Permission denied"* ]]
}

@test "--entrypoint runs ENTRYPOINT with CMD, or with the arguments given" {
    run shifter_as "$U" --image="$IMAGE_LAYERED" --entrypoint
    [ "$output" = "entry hello" ]
    run shifter_as "$U" --image="$IMAGE_LAYERED" --entrypoint one two
    [ "$output" = "entry one two" ]
    run shifter_as "$U" --image="$IMAGE_LAYERED" --entrypoint=/bin/echo other
    [ "$output" = "other" ]
}

@test "working directory: --workdir, the image WORKDIR, the current directory, or /" {
    run shifter_as "$U" --image="$IMAGE_LAYERED" -w pwd
    [ "$output" = /data ]
    run shifter_as "$U" --image="$IMAGE_LAYERED" --workdir=/site pwd
    [ "$output" = /site ]
    run shifter_as "$U" --image="$IMAGE_LAYERED" pwd     # /tmp exists in the container
    [ "$output" = /tmp ]
    SHIFTER_AS_DIR=$BED_DIR run shifter_as "$U" --image="$IMAGE_LAYERED" pwd
    [ "$output" = / ]
}

@test "the command's exit status comes back; 127 and 126 for missing and non-executable commands" {
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" sh -c 'exit 7'
    [ "$status" -eq 7 ]
    run -127 shifter_as "$U" --image="$IMAGE_BUSYBOX" no-such-command
    [ "$output" = "shifter: no-such-command: command not found" ]
    run -126 shifter_as "$U" --image="$IMAGE_BUSYBOX" /etc/os-release
    [ "$output" = "shifter: /etc/os-release: Permission denied" ]
}

@test "site mounts are there and read-only as configured" {
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" cat /site/README
    [ "$output" = "a file from the site" ]
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" sh -c 'touch /site/new'
    [ "$status" -ne 0 ]
}

@test "a volume onto a target missing from the image is created, with flags" {
    mkdir -p /tmp/shifter-vol && echo data > /tmp/shifter-vol/f && chown -R "$U" /tmp/shifter-vol
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V /tmp/shifter-vol:/new/deep/dir sh -c 'cat /new/deep/dir/f; echo more > /new/deep/dir/g'
    [ "$status" -eq 0 ]
    [ "$output" = data ]
    [ "$(cat /tmp/shifter-vol/g)" = more ]
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" --volume="/tmp/shifter-vol:/ro:ro" sh -c 'cat /ro/f && touch /ro/h'
    [ "$status" -ne 0 ]
    [[ "$output" == data*"Read-only file system"* ]]
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" --volume="/tmp/shifter-vol:/a;/site:/b" sh -c 'ls /a /b | wc -l'
    [ "$status" -eq 0 ]
    rm -rf /tmp/shifter-vol
}

@test "volumes are mounted nosuid,nodev" {
    mkdir -p /tmp/shifter-vol2 && chown "$U" /tmp/shifter-vol2
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V /tmp/shifter-vol2:/v grep ' /v ' /proc/self/mountinfo
    rm -rf /tmp/shifter-vol2
    [ "$status" -eq 0 ]
    [[ "$output" == *nosuid* ]]
    [[ "$output" == *nodev* ]]
}

@test "volume targets under /etc, /var and /proc are refused" {
    for target in /etc/x /var/lib/x /proc/x /etc; do
        run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V "/tmp:$target" true
        [ "$status" -eq 1 ]
        [[ "$output" == "shifter: "*"/tmp:$target"*"may not be"* ]]
    done
}

@test "a volume source the user cannot read is refused" {
    mkdir -p /tmp/shifter-secret && chmod 700 /tmp/shifter-secret
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V /tmp/shifter-secret:/s ls /s
    rmdir /tmp/shifter-secret
    [ "$status" -eq 1 ]
    [[ "$output" == *"may not open source /tmp/shifter-secret: Permission denied"* ]]
}

@test "a volume source or local: image inside a directory the user may not enter: one answer, whatever is there" {
    # Another user's private directory holding a directory and a file: a path that exists, one
    # that does not, and a file must read alike to the user, who cannot list the directory.
    local top=/tmp/shifter-oracle
    rm -rf "$top" && mkdir -p "$top/dir" && touch "$top/file"
    chown -R "$BED_USER2" "$top" && chmod 700 "$top"
    for name in dir missing file; do
        run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V "$top/$name:/s" true
        echo "$name: $output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"user $U may not open source $top/$name: Permission denied" ]]
        run shifter_as "$U" --image="local:$top/$name" true
        echo "$name: $output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"image \"local:$top/$name\": user $U may not open it: Permission denied" ]]
    done
    rm -rf "$top"
}

@test "a local: image on a filesystem that never answers fails after the time limit; the checking child holds no descriptor of shifter and is not dumpable" {
    [ -c /dev/fuse ] || skip "no /dev/fuse on this machine"
    local top
    top=$(mktemp -d /tmp/shifter-fuse.XXXXXX)
    chmod 755 "$top"
    mkdir "$top/mnt"
    # A FUSE mount whose daemon never reads a request: every lookup below it waits for ever.
    /usr/bin/python3 -u - "$top/mnt" >"$top/log" 2>&1 <<'PY' &
import ctypes, os, sys, time
fd = os.open("/dev/fuse", os.O_RDWR)
libc = ctypes.CDLL(None, use_errno=True)
options = ("fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other" % fd).encode()
if libc.mount(b"shifter-hang", sys.argv[1].encode(), b"fuse", 0, options) != 0:
    print("mount failed: %s" % os.strerror(ctypes.get_errno()), flush=True)
    sys.exit(1)
print("ready", flush=True)
time.sleep(3600)
PY
    local holder=$! deadline=$((SECONDS + 30))
    until grep -q ready "$top/log"; do
        kill -0 "$holder" 2>/dev/null || { cat "$top/log"; skip "could not mount a FUSE filesystem here"; }
        ((SECONDS < deadline)) || { cat "$top/log"; false; }
        sleep 0.1
    done
    if [ "$ENTRY_MODE" = userns ]; then
        # srun checks the image as it submits, as the user, through the same bounded child: the
        # user's own srun gives up after the time limit, and no job is queued. (The setuid
        # shifter's child, looked at below, has root's ids to keep from the user; srun has none.)
        run sh -c "cd /tmp && exec timeout 150 runuser -u '$U' -- env SLURM_CONF='$SLURM_CONF' \
            PATH='$SHIFTER_PREFIX/bin:/usr/bin:/bin' srun -N1 --image='local:$top/mnt' true"
        kill "$holder"
        wait "$holder" || true
        umount -l "$top/mnt"
        rm -rf "$top"
        echo "$output"
        [ "$status" -ne 0 ] && [ "$status" -ne 124 ]
        [[ "$output" == *"image \"local:$top/mnt\": it did not answer within 30 s when user $U opened it"* ]]
        [ -z "$(squeue -h -u "$U")" ]
        return
    fi
    # (A volume source is checked by the same bounded child, inside the container, where this
    # mount under the host's /tmp is not visible: the container's /tmp is a bind of /tmp alone.)
    # While the check hangs, its child is looked at: it must hold none of shifter's descriptors
    # (7 is open in shifter), and the user must not be able to trace it, even where the site lets
    # setuid programs dump (fs.suid_dumpable=1): it checks with the user's effective ids, keeping
    # root's saved ids, and is not dumpable.
    local dumpable
    dumpable=$(cat /proc/sys/fs/suid_dumpable)
    echo 1 >/proc/sys/fs/suid_dumpable
    (cd /tmp && exec timeout 150 runuser -u "$U" -- sh -c 'exec 7</etc/hostname; exec "$0" --image="local:$1" true' \
        "$SHIFTER" "$top/mnt" >"$top/out" 2>&1) &
    local runner=$! shifter= child= fds= owner= ids= traced= uid
    uid=$(id -u "$U")
    # The child lives 30 s, blocked in the FUSE lookup, once it has taken the user's ids.
    deadline=$((SECONDS + 25))
    until [ -n "$child" ] && [ "$(awk '/^Uid:/ {print $5}' "/proc/$child/status" 2>/dev/null)" = "$uid" ]; do
        shifter=$(pgrep -f "^$SHIFTER --image=local:$top/mnt" | head -n 1)
        child=
        [ -z "$shifter" ] || child=$(pgrep -P "$shifter" | head -n 1)
        ((SECONDS < deadline)) || break
        sleep 0.1
    done
    if [ -n "$child" ]; then
        fds=$(ls /proc/"$shifter"/fd | sort -n | tr '\n' ' ')/$(ls /proc/"$child"/fd | sort -n | tr '\n' ' ')
        owner=$(stat -c %U "/proc/$child/status")
        ids=$(awk '/^Uid:/ {print $3, $4, $5}' "/proc/$child/status")
        traced=$(runuser -u "$U" -- python3 -c 'import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(16, int(sys.argv[1]), None, None) != 0:  # PTRACE_ATTACH
    print(os.strerror(ctypes.get_errno()))
else:
    print("attached")' "$child" 2>&1)
    fi
    local status=0
    wait "$runner" || status=$?
    echo "$dumpable" >/proc/sys/fs/suid_dumpable
    # The daemon goes; its mount then fails at once, and can be removed.
    kill "$holder"
    wait "$holder" || true
    umount -l "$top/mnt"
    output=$(cat "$top/out")
    rm -rf "$top"
    echo "$output"
    echo "shifter $shifter, its checking child $child: descriptors $fds; the child's /proc belongs to $owner; effective, saved and filesystem uids $ids; the user's PTRACE_ATTACH: $traced"
    [ "$status" -eq 1 ]
    [[ "$output" == *"image \"local:$top/mnt\": it did not answer within 30 s when user $U opened it"* ]]
    [ -n "$child" ]
    # shifter holds 7; the child holds one descriptor only, the pipe of its answer.
    [[ "$fds" == *" 7 "*/* ]]
    [ "$(wc -w <<<"${fds#*/}")" -eq 1 ]
    [ "$owner" = root ]
    [ "$ids" = "$uid 0 $uid" ]
    [ "$traced" = "Operation not permitted" ]
}

@test "the user's resource limits bind the user's command, not root's work: ulimit -f leaves mkfs.xfs of a cache whole" {
    # 100 blocks of 512 bytes: far less than mkfs.xfs writes on a 512 MiB cache file. The soft
    # limit only, which a user may set and raise again: lifting a hard limit takes
    # CAP_SYS_RESOURCE, which root lacks where the test bed itself runs in a container. With
    # entryMode=userns the prolog makes the cache, under slurmd's limits, and srun gives the
    # user's to the task.
    local launch="\"$SHIFTER\""
    if [ "$ENTRY_MODE" = userns ]; then
        launch="srun -Q -I120 -N1 -n1 -w n1 --image=$IMAGE_BUSYBOX --volume=/x:/scratch:perNodeCache=size=512m \"$SHIFTER\""
    fi
    cat >/tmp/shifter-ulimit.sh <<SCRIPT
#!/bin/sh
ulimit -S -f 100
exec $launch --image="$IMAGE_BUSYBOX" --volume=/x:/scratch:perNodeCache=size=512m \
    sh -c 'grep "Max file size" /proc/self/limits; echo written > /scratch/f; cat /scratch/f'
SCRIPT
    chmod 755 /tmp/shifter-ulimit.sh
    run sh -c "cd /tmp && runuser -u '$U' -- env SLURM_CONF='$SLURM_CONF' PATH='$SHIFTER_PREFIX/bin:/usr/bin:/bin' /tmp/shifter-ulimit.sh"
    rm -f /tmp/shifter-ulimit.sh
    wait_job "" 120
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" =~ Max\ file\ size\ +51200\ +unlimited\ +bytes ]]
    [[ "$output" == *written* ]]
}

@test "a volume source that is a symlink to a place the user may not reach is refused" {
    mkdir -p /tmp/shifter-secret2 && chmod 700 /tmp/shifter-secret2
    rm -f /tmp/shifter-link && runuser -u "$U" -- ln -s /tmp/shifter-secret2 /tmp/shifter-link
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V /tmp/shifter-link:/s ls /s
    rm -f /tmp/shifter-link; rmdir /tmp/shifter-secret2
    [ "$status" -eq 1 ]
    [[ "$output" == *"Permission denied"* ]]
}

@test "LD_LIBRARY_PATH, LD_PRELOAD and TMPDIR reach the command, which the C library's secure mode strips from the setuid shifter" {
    LD_LIBRARY_PATH=/opt/lib:/x LD_PRELOAD='' TMPDIR=/tmp/u-tmp run shifter_as "$U" --image="$IMAGE_BUSYBOX" \
        sh -c 'echo "ld=$LD_LIBRARY_PATH tmp=$TMPDIR preload=${LD_PRELOAD-unset}"'
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "ld=/opt/lib:/x tmp=/tmp/u-tmp preload=" ]
    # --clearenv still starts from nothing.
    LD_LIBRARY_PATH=/opt/lib run shifter_as "$U" --image="$IMAGE_BUSYBOX" --clearenv sh -c 'echo "ld=${LD_LIBRARY_PATH-unset}"'
    [ "$status" -eq 0 ]
    [ "$output" = "ld=unset" ]
}

@test "a volume of the image's own directory is refused with the reason, never mounted in place of the host's" {
    # /bin is the image's (the bed's site filesystems are /site and /tmp): the user meant the host's.
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V /bin:/x ls /x
    echo "$output"
    [ "$status" -eq 1 ]
    [[ "$output" == *"volume \"/bin:/x\": source /bin is the image's own directory, on no site filesystem (siteFs in udiRoot.conf) and no earlier volume; to mount the host's /bin, add the flag host (/bin:/x:host)" ]]
    # A directory of a site filesystem, and one of an earlier volume, are taken as before.
    mkdir -p /tmp/shifter-vol3/sub && chown -R "$U" /tmp/shifter-vol3
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V "/tmp/shifter-vol3:/a;/a/sub:/b" sh -c 'touch /b/f && ls /a/sub'
    rm -rf /tmp/shifter-vol3
    [ "$status" -eq 0 ]
    [ "$output" = f ]
    # A single file: one of a site filesystem's is taken, one of the image's is refused alike.
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V /site/README:/readme:ro cat /readme
    [ "$status" -eq 0 ]
    [ "$output" = "a file from the site" ]
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V /opt/suid/id:/x cat /x
    echo "$output"
    [ "$status" -eq 1 ]
    [[ "$output" == *"volume \"/opt/suid/id:/x\": source /opt/suid/id is the image's own file, on no site filesystem"* ]]
}

@test "a host volume (flag host) is the host's directory, opened with the user's rights; another user's is refused" {
    local top=/var/tmp/shifter-hostvol
    rm -rf "$top" && mkdir -p "$top/mine" "$top/theirs/dir"
    echo "from the host" >"$top/mine/f"
    chown -R "$U" "$top/mine"
    chown -R "$BED_USER2" "$top/theirs" && chmod 700 "$top/theirs"
    ln -s "$top/theirs/dir" "$top/link" && chown -h "$U" "$top/link"
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V "$top/mine:/data:host" sh -c 'cat /data/f; echo more >/data/g'
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "from the host" ]
    [ "$(stat -c %U "$top/mine/g")" = "$U" ]
    # Without the flag the same path is looked up in the container, where it is not.
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V "$top/mine:/data" true
    [ "$status" -eq 1 ]
    [[ "$output" == *"may not open source $top/mine: No such file or directory in the container; to mount the host's $top/mine, add the flag host" ]]
    # The other user's private directory, directly, through the user's own symlink, or a path
    # in it that does not exist: one answer.
    for source in "$top/theirs/dir" "$top/link" "$top/theirs/missing"; do
        run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V "$source:/data:host" true
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"user $U may not open source $source: Permission denied" ]]
    done
    rm -rf "$top"
}

@test "a host volume takes the mounts below it, nosuid and nodev on each, and shows nothing they hide" {
    local top=/var/tmp/shifter-hostvol2
    rm -rf "$top" && mkdir -p "$top/sub"
    echo hidden >"$top/sub/under-the-mount"
    # A setuid-root program that prints its effective uid (static: the image has no C library).
    printf '#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("euid=%%d\\n", (int)geteuid()); return 0; }\n' |
        cc -static -x c -o "$top/euid" -
    # The mount, where shifter starts (on the node in a job, with entryMode=userns).
    where_shifter_runs sh -ec "mount -t tmpfs -o size=16m,mode=0755 shifter-hostvol2 '$top/sub'
        echo 'on the mount' >'$top/sub/f'; mv '$top/euid' '$top/sub/euid'
        chown root '$top/sub/euid' && chmod 4755 '$top/sub/euid'; chown '$U' '$top' '$top/sub/f'"
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V "$top:/data:host" sh -c \
        'cat /data/sub/f; ls /data/sub; grep " /data/sub " /proc/self/mountinfo; /data/sub/euid'
    # The container's copy of the mount goes with its mount namespace, a moment after the command.
    where_shifter_runs umount -l "$top/sub"
    for _ in $(seq 50); do rm -rf "$top" 2>/dev/null && break; sleep 0.2; done
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "on the mount" ]
    [[ "$output" != *under-the-mount* ]]
    [[ "$(grep ' /data/sub ' <<<"$output")" == *nosuid*nodev* ]]
    [ "${lines[-1]}" = "euid=$(id -u "$U")" ]
}

@test "a volume symlink resolves inside the container, never to the host" {
    # /data/abs-sym in the image points to /etc/os-release: inside the container that is the
    # image's own file (on the container's root mount), refused as such; the host's is never seen.
    run shifter_as "$U" --image="$IMAGE_LAYERED" -V /data/abs-sym:/x true
    [ "$status" -eq 1 ]
    [[ "$output" == *"source /data/abs-sym is the image's own file, on no site filesystem"* ]]
}

@test "'..' and relative volume paths are refused" {
    for spec in "/tmp/../etc:/x" "/tmp:/x/../etc" "tmp:/x" "/tmp:x"; do
        run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V "$spec" true
        [ "$status" -eq 1 ]
        [[ "$output" == "shifter: "* ]]
        [ "${#lines[@]}" -eq 1 ]
    done
}

@test "a regular user may not choose the configuration file" {
    run runuser -u "$U" -- env SHIFTER_CONFIG=/tmp/evil.conf "$SHIFTER" --image="$IMAGE_BUSYBOX" id
    [ "$status" -eq 1 ]
    [ "$output" = "shifter: only root may choose the configuration file (--config or SHIFTER_CONFIG)" ]
    run shifter_as "$U" --config=/tmp/evil.conf --image="$IMAGE_BUSYBOX" id
    [ "$status" -eq 1 ]
}

@test "a configuration writable by others stops everything" {
    chmod o+w "$SITE_CONFIG"
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" id
    chmod o-w "$SITE_CONFIG"
    [ "$status" -eq 1 ]
    [[ "$output" == "shifter: "*"$SITE_CONFIG"*"writable"* ]]
}

@test "a private image runs only for users on its access list" {
    run shifter_as "$U" --image="$IMAGE_PRIVATE" id -u
    [ "$status" -eq 1 ]
    [[ "$output" == *"is private and uid $(id -u "$U") is not on its access list"* ]]
    run shifter_as "$BED_USER2" --image="$IMAGE_PRIVATE" id -u
    [ "$status" -eq 0 ]
    [ "$output" = "$(id -u "$BED_USER2")" ]
}

@test "root is refused" {
    run sh -c "cd /tmp && '$SHIFTER' --image='$IMAGE_BUSYBOX' id"
    [ "$status" -eq 1 ]
    [[ "$output" == "shifter: refusing to run a container as root"* ]]
}

@test "an image that is not in the store says how to get it" {
    run shifter_as "$U" --image=127.0.0.1:5000/test/absent:1 true
    [ "$status" -eq 1 ]
    [[ "$output" == *"is not in the image store"*"shifterimg pull docker:127.0.0.1:5000/test/absent:1"* ]]
}

@test "local: images run from a directory where allowLocalChroot=1" {
    mkdir -p /tmp/shifter-local/bin /tmp/shifter-local/etc
    cp /bin/busybox /tmp/shifter-local/bin/; ln -sf busybox /tmp/shifter-local/bin/sh; ln -sf busybox /tmp/shifter-local/bin/cat
    echo local-root > /tmp/shifter-local/marker
    run shifter_as "$U" --image=local:/tmp/shifter-local /bin/cat /marker
    rm -rf /tmp/shifter-local
    [ "$status" -eq 0 ]
    [ "$output" = local-root ]
}

@test "site hooks run once as root around the site mounts; a failing hook stops the setup" {
    cp -p "$SITE_CONFIG" /tmp/shifter-conf.bak
    rm -f /tmp/shifter-hooks.log
    printf '#!/bin/sh\necho "pre $(id -u) $(test -e "$1/site/README" && echo mounted || echo unmounted)" >> /tmp/shifter-hooks.log\n' > /tmp/shifter-pre.sh
    printf '#!/bin/sh\necho "post $(id -u) $(test -e "$1/site/README" && echo mounted || echo unmounted)" >> /tmp/shifter-hooks.log\n' > /tmp/shifter-post.sh
    printf 'sitePreMountHook=/tmp/shifter-pre.sh\nsitePostMountHook=/tmp/shifter-post.sh\n' >> "$SITE_CONFIG"
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" true
    first_status=$status
    log=$(cat /tmp/shifter-hooks.log)
    printf '#!/bin/sh\necho "no scratch quota for $SHIFTER_USER" >&2\nexit 3\n' > /tmp/shifter-post.sh
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" true
    cp -p /tmp/shifter-conf.bak "$SITE_CONFIG"
    rm -f /tmp/shifter-pre.sh /tmp/shifter-post.sh /tmp/shifter-hooks.log /tmp/shifter-conf.bak
    [ "$first_status" -eq 0 ]
    echo "$log"
    [ "$log" = "$(printf 'pre 0 unmounted\npost 0 mounted')" ]
    [ "$status" -eq 1 ]
    [ "$output" = "shifter: sitePostMountHook /tmp/shifter-post.sh failed with status 3: no scratch quota for $U" ]
}

@test "a module's files, variables and user hook reach the container" {
    cp -p "$SITE_CONFIG" /tmp/shifter-conf.bak
    mkdir -p /tmp/shifter-module/bin
    printf '#!/bin/sh\necho "userhook as $(id -un)" >&2\n' > /tmp/shifter-module/bin/hook.sh
    chmod 755 /tmp/shifter-module/bin/hook.sh
    cat >> "$SITE_CONFIG" <<CONF
module_demo_copyPath=/tmp/shifter-module
module_demo_siteEnvPrepend=PATH=/opt/udiImage/modules/demo/bin
module_demo_siteEnv=DEMO_MODULE=loaded
module_demo_userhook=/opt/udiImage/modules/demo/bin/hook.sh
CONF
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" --module=demo sh -c 'echo "$DEMO_MODULE ${PATH%%:*}"; ls /opt/udiImage/modules/demo/bin'
    with_module_status=$status with_module=$output
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" --module=none sh -c 'echo "${DEMO_MODULE:-none}"'
    cp -p /tmp/shifter-conf.bak "$SITE_CONFIG"; rm -rf /tmp/shifter-module /tmp/shifter-conf.bak
    [ "$with_module_status" -eq 0 ]
    [ "$with_module" = "$(printf 'userhook as %s\nloaded /opt/udiImage/modules/demo/bin\nhook.sh' "$U")" ]
    [ "$output" = none ]
}

@test "a volume target reached through a symlink in the image is refused" {
    mkdir -p /tmp/shifter-vol3 && chown "$U" /tmp/shifter-vol3
    run shifter_as "$U" --image="$IMAGE_LAYERED" -V /tmp/shifter-vol3:/data/abs-sym/x true
    rm -rf /tmp/shifter-vol3
    [ "$status" -eq 1 ]
    [[ "$output" == *"/data/abs-sym/x"*"Too many levels of symbolic links"* ]]
}

@test "a volume target is never created inside a mounted host filesystem" {
    mkdir -p /tmp/shifter-vol4 && chown "$U" /tmp/shifter-vol4
    echo mine >/tmp/shifter-vol4/f && chown "$U" /tmp/shifter-vol4/f
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V "/tmp/shifter-vol4:/tmp/shifter-created-$$" true
    created=$(test -e "/tmp/shifter-created-$$" && echo yes || echo no)
    dir_status=$status dir_output=$output
    # Nor a file target, for a file source.
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V "/tmp/shifter-vol4/f:/tmp/shifter-created-file-$$" true
    file_status=$status file_output=$output
    created_file=$(test -e "/tmp/shifter-created-file-$$" && echo yes || echo no)
    rm -rf /tmp/shifter-vol4 "/tmp/shifter-created-$$" "/tmp/shifter-created-file-$$"
    [ "$dir_status" -eq 1 ]
    [[ "$dir_output" == *"its parent is a mounted filesystem"* ]]
    [ "$created" = no ]
    echo "$file_output"
    [ "$file_status" -eq 1 ]
    [[ "$file_output" == *"its directory is a mounted filesystem, not the container's own"* ]]
    [ "$created_file" = no ]
}

@test "a local: image the user may not read is refused" {
    mkdir -p /tmp/shifter-private-root/bin && chmod 700 /tmp/shifter-private-root
    cp /bin/busybox /tmp/shifter-private-root/bin/
    run shifter_as "$U" --image=local:/tmp/shifter-private-root /bin/busybox true
    rm -rf /tmp/shifter-private-root
    [ "$status" -eq 1 ]
    [[ "$output" == *'image "local:/tmp/shifter-private-root": user '"$U"' may not open it: Permission denied'* ]]
}

@test "mounts made for a container never appear on the host" {
    before=$(where_shifter_runs grep -c . /proc/self/mountinfo)
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" -V /tmp:/data sh -c 'grep -c . /proc/self/mountinfo'
    [ "$status" -eq 0 ]
    # With entryMode=userns the job's prolog mounted its root on the node, and its epilog (which
    # shifter_as waits for) unmounted it.
    [ "$(where_shifter_runs grep -c . /proc/self/mountinfo)" -eq "$before" ]
}

@test "images are read through buffered loop devices unless imageLoopDirectIO=1; per-node caches use direct I/O" {
    # /sys is the host's, so the container sees every loop device's backing file and mode.
    probe='for d in /sys/block/loop*/loop; do f=$(cat $d/backing_file 2>/dev/null) || continue; echo "$(cat $d/dio) $f"; done'
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" --volume="/x:/scratch:perNodeCache=size=512m" sh -c "$probe"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -F " $IMAGE_STORE/" <<<"$output" | cut -d' ' -f1 | sort -u)" = 0 ]
    [ "$(grep -F " $BED_DIR/cache/" <<<"$output" | cut -d' ' -f1 | sort -u)" = 1 ]
    # The probe lists every loop device: the first container's must be gone (they go a moment
    # after it ends), or the second probe would see them too.
    assert_no_leaks
    cp -p "$SITE_CONFIG" /tmp/shifter-conf.bak
    echo 'imageLoopDirectIO=1' >> "$SITE_CONFIG"
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" sh -c "$probe"
    cp -p /tmp/shifter-conf.bak "$SITE_CONFIG"; rm -f /tmp/shifter-conf.bak
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -F " $IMAGE_STORE/" <<<"$output" | cut -d' ' -f1 | sort -u)" = 1 ]
}

@test "the site's etcPath files reach the container's /etc; its subdirectories do not; a missing etcPath is an error" {
    cp -p "$SITE_CONFIG" /tmp/shifter-conf.bak
    mkdir -p /tmp/shifter-etc/skel
    echo 'site file' > /tmp/shifter-etc/site.conf
    echo 'etcPath=/tmp/shifter-etc' >> "$SITE_CONFIG"
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" sh -c 'cat /etc/site.conf; test -e /etc/skel && echo skel copied || echo no skel'
    first_status=$status first_output=$output
    rm -rf /tmp/shifter-etc
    run shifter_as "$U" --image="$IMAGE_BUSYBOX" true
    cp -p /tmp/shifter-conf.bak "$SITE_CONFIG"; rm -f /tmp/shifter-conf.bak
    echo "$first_output"
    [ "$first_status" -eq 0 ]
    [ "$first_output" = "$(printf 'site file\nno skel')" ]
    [ "$status" -eq 1 ]
    [[ "$output" == "shifter: etcPath /tmp/shifter-etc in udiRoot.conf: couldn't "*"No such file or directory"* ]]
}

@test "an image whose /etc/passwd cannot be read is refused with the reason; one without it gets the user's entries" {
    mkdir -p /tmp/shifter-local-etc/bin /tmp/shifter-local-etc/etc/passwd
    cp /bin/busybox /tmp/shifter-local-etc/bin/; ln -sf busybox /tmp/shifter-local-etc/bin/sh
    run shifter_as "$U" --image=local:/tmp/shifter-local-etc /bin/sh -c true
    first_status=$status first_output=$output
    rmdir /tmp/shifter-local-etc/etc/passwd
    run shifter_as "$U" --image=local:/tmp/shifter-local-etc /bin/busybox grep "^$U:" /etc/passwd
    rm -rf /tmp/shifter-local-etc
    echo "$first_output"
    [ "$first_status" -eq 1 ]
    [[ "$first_output" == "shifter: the image's /etc/passwd cannot be read: "*"(it must be a regular file of at most 16 MiB; fix the image)" ]]
    [ "$status" -eq 0 ]
    [[ "$output" == "$U:x:$(id -u "$U"):"* ]]
}

@test "mountUdiRootWritable=0 makes the container's / read-only; /tmp and volumes stay writable" {
    # A local: image with a directory anyone may write to, so only the read-only root can refuse.
    mkdir -p /tmp/shifter-local-ro/bin /tmp/shifter-local-ro/scratch
    cp /bin/busybox /tmp/shifter-local-ro/bin/; ln -sf busybox /tmp/shifter-local-ro/bin/sh; ln -sf busybox /tmp/shifter-local-ro/bin/touch
    chmod 1777 /tmp/shifter-local-ro/scratch
    mkdir -p /tmp/shifter-rw-volume && chmod 777 /tmp/shifter-rw-volume
    probe='touch /scratch/f 2>&1 && echo root-writable; touch /tmp/shifter-rw-probe && echo tmp-ok; touch /data/rw/f && echo volume-ok'
    run shifter_as "$U" --image=local:/tmp/shifter-local-ro -V /tmp/shifter-rw-volume:/data/rw /bin/sh -c "$probe"
    writable_status=$status writable_output=$output
    cp -p "$SITE_CONFIG" /tmp/shifter-conf.bak
    echo 'mountUdiRootWritable=0' >> "$SITE_CONFIG"
    run shifter_as "$U" --image=local:/tmp/shifter-local-ro -V /tmp/shifter-rw-volume:/data/rw /bin/sh -c "$probe"
    cp -p /tmp/shifter-conf.bak "$SITE_CONFIG"; rm -f /tmp/shifter-conf.bak /tmp/shifter-rw-probe
    rm -rf /tmp/shifter-rw-volume /tmp/shifter-local-ro
    echo "$writable_output"; echo "$output"
    [ "$writable_status" -eq 0 ]
    [ "$writable_output" = "$(printf 'root-writable\ntmp-ok\nvolume-ok')" ]
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == *"Read-only file system"* ]]
    [ "${lines[1]}" = tmp-ok ]
    [ "${lines[2]}" = volume-ok ]
}
