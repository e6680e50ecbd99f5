#!/usr/bin/env bats
# shifterimg against a running shifter-imagegw, as root and the two non-root users with their own
# munge credentials: pull (public, private with --user, with saved registry credentials), progress
# in a pipe and on a terminal, images, lookup, expire and rm by the owner and refused for others,
# autoexpire, import (archive bombs refused before they expand, one archive import per user at a
# time), an unreachable gateway, and the commands of local mode that need no gateway.

load helpers
bats_require_minimum_version 1.5.0

SHIFTERIMG=${SHIFTERIMG:-$SHIFTER_PREFIX/bin/shifterimg}
UID1=$(id -u "$BED_USER")
UID2=$(id -u "$BED_USER2")

# start_slow_registry: a TCP relay to the anonymous registry that sends the registry's answers at
# about 400 KiB/s, so a pull through it lasts long enough to show byte progress. TLS passes
# through untouched; the registry's certificate names 127.0.0.1, whatever the port.
start_slow_registry() {
    python3 -u - "$SLOW_PORT" "${REGISTRY_ANON##*:}" >"$WORK/slow.log" 2>&1 <<'PY' &
import socket, sys, threading, time
listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
def pump(source, target, rate):
    try:
        while True:
            data = source.recv(16384)
            if not data:
                break
            target.sendall(data)
            if rate:
                time.sleep(len(data) / rate)
    except OSError:
        pass
    finally:
        for s in (source, target):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen(16)
print("ready", flush=True)
while True:
    client, _ = server.accept()
    upstream = socket.create_connection(("127.0.0.1", target_port))
    threading.Thread(target=pump, args=(client, upstream, 0), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client, 400 * 1024), daemon=True).start()
PY
    echo $! >"$WORK/slow.pid"
    for _ in $(seq 300); do grep -q ready "$WORK/slow.log" 2>/dev/null && return 0; sleep 0.1; done
    echo "the slow registry relay did not start" >&2
    return 1
}

setup_file() {
    # The users run shifterimg from here and read its configuration: a directory they can reach,
    # which bats's own temporary directory is not.
    WORK=$(mktemp -d /tmp/shifterimg-gateway.XXXXXX)
    export WORK
    mkdir -p "$WORK/images" "$WORK/images2" "$WORK/local-images" "$WORK/cfg1" "$WORK/cfg2"
    chmod 755 "$WORK" "$WORK/images" "$WORK/images2" "$WORK/local-images"
    chown "$BED_USER" "$WORK/cfg1"
    chown "$BED_USER2" "$WORK/cfg2"
    PORT=$(free_port)
    SLOW_PORT=$(free_port)
    DEAD_PORT=$(free_port)
    export PORT SLOW_PORT DEAD_PORT
    cat >"$WORK/imagegw.conf" <<CONF
{
    "listen": "127.0.0.1:$PORT",
    "database": "$WORK/state.sqlite",
    "workers": 2,
    "systems": {"bed": {"imagePath": "$WORK/images"}, "bed2": {"imagePath": "$WORK/images2"}},
    "registries": {
        "anon": {"url": "https://$REGISTRY_ANON", "caBundle": "$CA_BUNDLE", "auth": "anonymous"},
        "slow": {"url": "https://127.0.0.1:$SLOW_PORT", "caBundle": "$CA_BUNDLE", "auth": "anonymous"},
        "token": {"url": "https://$REGISTRY_TOKEN", "caBundle": "$CA_BUNDLE", "auth": "user"},
        "basic": {"url": "https://$REGISTRY_BASIC", "caBundle": "$CA_BUNDLE", "auth": "user"}
    },
    "defaultRegistry": "$REGISTRY_ANON",
    "minPullIntervalSeconds": 3600,
    "jobTimeLimitSeconds": 10,
    "expireAfterSeconds": 3600,
    "admins": ["root"],
    "importUsers": ["$BED_USER"]
}
CONF
    # The site configurations shifterimg reads: root-owned and not writable by others.
    cat >"$WORK/udiRoot.conf" <<CONF
udiMount=$WORK/udiMount
loopMount=$WORK/loopMount
imagePath=$WORK/images
imageGateway=http://127.0.0.1:$PORT
system=bed
gatewayTimeout=10
CONF
    # A second cluster with its own store, so that the slow pulls convert images the first
    # store already holds.
    sed 's/^system=bed$/system=bed2/' "$WORK/udiRoot.conf" >"$WORK/bed2.conf"
    cat >"$WORK/unreachable.conf" <<CONF
udiMount=$WORK/udiMount
loopMount=$WORK/loopMount
imagePath=$WORK/images
imageGateway=http://127.0.0.1:1 http://127.0.0.1:$DEAD_PORT/
system=bed
gatewayTimeout=2
CONF
    cat >"$WORK/local.conf" <<CONF
udiMount=$WORK/udiMount
loopMount=$WORK/loopMount
imagePath=$WORK/local-images
imageGateway=local
CONF
    chown root:root "$WORK"/*.conf
    chmod 644 "$WORK"/*.conf
    start_slow_registry
    start_gateway "$PORT"
}

teardown_file() {
    local pid
    for pid in "$(cat "$WORK/gateway.pid" 2>/dev/null)" "$(cat "$WORK/slow.pid" 2>/dev/null)"; do
        [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
    done
    local gateway
    gateway=$(cat "$WORK/gateway.pid" 2>/dev/null) || true
    for _ in $(seq 50); do [ -n "$gateway" ] && kill -0 "$gateway" 2>/dev/null || break; sleep 0.1; done
    [[ $WORK == /tmp/shifterimg-gateway.* ]] && rm -rf "$WORK"
}

# run_until_not_in_use USER ARGS...: `shifterimg ARGS` as USER, again every half second while
# the gateway refuses it for an image in use (409), for at most 30 s; bats' run leaves the last
# answer in $status and $output.
run_until_not_in_use() {
    for _ in $(seq 60); do
        run simg "$@"
        echo "$output"
        [ "$status" -eq 0 ] && return
        [[ "$output" == *"refused for now (409 conflict"* ]] || return 0
        sleep 0.5
    done
}

# simg USER ARGS...: shifterimg as USER with the gateway's site configuration ($SIMG_CONFIG, by
# default the first cluster's), from $WORK, with that user's own credentials file.
simg() {
    local user=$1; shift
    local config=$WORK/cfg1
    [ "$user" = "$BED_USER2" ] && config=$WORK/cfg2
    (cd "$WORK" && runuser -u "$user" -- env XDG_CONFIG_HOME="$config" SHIFTER_CA_BUNDLE="$CA_BUNDLE" \
        "$SHIFTERIMG" --config "${SIMG_CONFIG:-$WORK/udiRoot.conf}" "$@")
}

# A progress line in a pipe, as scripts parse it.
PROGRESS_LINE='^progress status=(PENDING|PULLING|CONVERSION|READY) received=([0-9]+|-) total=([0-9]+|-)( message=.*)?$'

@test "shifterimg gateway: a user pulls a public image; a pipe gets plain progress lines and the id" {
    run --separate-stderr simg "$BED_USER" pull test/busybox:latest
    echo "$output"; echo "$stderr"
    [ "$status" -eq 0 ]
    [ -z "$stderr" ]
    [[ ${lines[0]} == "progress status=PENDING "* || ${lines[0]} == "progress status=PULLING "* ]]
    for line in "${lines[@]:0:${#lines[@]}-1}"; do [[ $line =~ $PROGRESS_LINE ]]; done
    [[ ${lines[-2]} == "progress status=READY "* ]]
    [[ ${lines[-1]} =~ ^pulled\ docker:$REGISTRY_ANON/test/busybox:latest\ sha256:[0-9a-f]{64}$ ]]
    id=${lines[-1]##* }
    [ -f "$WORK/images/${id#sha256:}.squashfs" ]
    # Within the minimum interval the gateway does not pull again: the image is present.
    run simg "$BED_USER2" pull "docker:$REGISTRY_ANON/test/busybox"
    [ "$status" -eq 0 ]
    [ "$output" = "present docker:$REGISTRY_ANON/test/busybox:latest $id" ]
}

@test "shifterimg gateway: images and lookup show the public image to every user" {
    run simg "$BED_USER2" images
    echo "$output"
    [ "$status" -eq 0 ]
    grep -qE "^docker:$REGISTRY_ANON/test/busybox:latest  sha256:[0-9a-f]{64}  [0-9T:-]+Z  public  unsigned$" <<<"$output"
    id=$(grep "test/busybox:latest" <<<"$output" | awk '{print $2}')
    run simg "$BED_USER2" lookup test/busybox
    [ "$status" -eq 0 ]
    [ "$output" = "$id" ]
    run simg root lookup "id:$id"
    [ "$status" -eq 0 ]
    [ "$output" = "$id" ]
    run simg "$BED_USER" images --json
    [ "$status" -eq 0 ]
    jq -e --arg id "$id" 'map(select(.id == $id and .status == "READY")) | length == 1' <<<"$output"
}

@test "shifterimg gateway: a pull through a slow registry shows byte progress in a pipe" {
    SIMG_CONFIG=$WORK/bed2.conf run --separate-stderr simg "$BED_USER2" pull "127.0.0.1:$SLOW_PORT/test/busybox:latest"
    echo "$output"; echo "$stderr"
    [ "$status" -eq 0 ]
    for line in "${lines[@]:0:${#lines[@]}-1}"; do [[ $line =~ $PROGRESS_LINE ]]; done
    # Byte counts moved while the pull ran, against a known total.
    # Conversion starts on the first layer while the others still download, so both statuses count.
    received=$(grep -E '^progress status=(PULLING|CONVERSION) received=[0-9]+ total=[0-9]+' <<<"$output" | sed -E 's/.* received=([0-9]+) .*/\1/' | sort -un)
    echo "received: $received"
    [ "$(wc -l <<<"$received")" -ge 2 ]
    total=$(grep -oE ' total=[0-9]+' <<<"$output" | head -n1 | cut -d= -f2)
    [ "$total" -gt 1000000 ]
    [[ ${lines[-1]} == "pulled docker:127.0.0.1:$SLOW_PORT/test/busybox:latest sha256:"* ]]
}

@test "shifterimg gateway: a pull on a terminal shows the status and byte counts" {
    run script -qec "runuser -u $BED_USER -- env XDG_CONFIG_HOME=$WORK/cfg1 '$SHIFTERIMG' --config '$WORK/bed2.conf' pull 127.0.0.1:$SLOW_PORT/test/layered:latest" /dev/null
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"docker:127.0.0.1:$SLOW_PORT/test/layered:latest  PENDING"* ]]
    [[ "$output" =~ test/layered:latest\ \ (PULLING|CONVERSION) ]]
    [[ "$output" =~ test/layered:latest\ \ READY\ \ [0-9.]+\ MiB ]]
    [[ "$output" =~ [0-9.]+\ (KiB|MiB)\ /\ [0-9.]+\ (KiB|MiB)\ \([0-9]+%\) ]]
    [[ "$output" != *"progress status="* ]]
    [[ "$output" == *"pulled docker:127.0.0.1:$SLOW_PORT/test/layered:latest sha256:"* ]]
}

@test "shifterimg gateway: a --user pull is private; others cannot see or remove it; the owner removes it" {
    run simg "$BED_USER" --user "$BED_USER" pull test/layered:latest
    echo "$output"
    [ "$status" -eq 0 ]
    id=${lines[-1]##* }
    [[ $id == sha256:* ]]
    [ "$(stat -c %a "$WORK/images/${id#sha256:}.squashfs")" = 600 ]
    [ "$(jq -c .userACL "$WORK/images/${id#sha256:}.meta.json")" = "[$UID1]" ]
    run simg "$BED_USER" images
    grep -q "^docker:$REGISTRY_ANON/test/layered:latest  $id  .*  private  unsigned$" <<<"$output"
    run simg "$BED_USER2" images
    [[ "$output" != *"$id"* ]]
    run --separate-stderr simg "$BED_USER2" lookup test/layered:latest
    echo "$stderr"
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    [[ "$stderr" == "shifterimg: lookup test/layered:latest: not found (404 from gateway http://127.0.0.1:$PORT; "*"): image docker:$REGISTRY_ANON/test/layered:latest: not found"* ]]
    [ "$(wc -l <<<"$stderr")" -eq 1 ]
    run --separate-stderr simg "$BED_USER2" rm test/layered:latest
    [ "$status" -eq 1 ]
    [[ "$stderr" == "shifterimg: rm test/layered:latest: not found (404 "* ]]
    # The owner looks the image up, as a job submission does, so a job might use it: refused for now.
    run simg "$BED_USER" lookup test/layered:latest
    [ "$output" = "$id" ]
    run --separate-stderr simg "$BED_USER" rm test/layered:latest
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == "shifterimg: rm test/layered:latest: refused for now (409 conflict from gateway "*"job time limit"* ]]
    # Refused until the job time limit has passed since the lookup, then removed.
    run_until_not_in_use "$BED_USER" rm test/layered:latest
    [ "$status" -eq 0 ]
    [ "$output" = "removed $id" ]
    [ ! -e "$WORK/images/${id#sha256:}.squashfs" ]
    run simg "$BED_USER" lookup test/layered:latest
    [ "$status" -eq 2 ]
}

@test "shifterimg gateway: expire is refused to a user for a public image and done by an administrator" {
    run --separate-stderr simg "$BED_USER" expire test/busybox:latest
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == "shifterimg: expire test/busybox:latest: not permitted (403 forbidden from gateway http://127.0.0.1:$PORT): "*"only administrators"* ]]
    run simg "$BED_USER" lookup test/busybox:latest
    id=$output
    [ -f "$WORK/images/${id#sha256:}.squashfs" ]
    # That lookup makes the image in use for the job time limit.
    run --separate-stderr simg root expire test/busybox:latest
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"refused for now (409 conflict"* ]]
    # Refused until the job time limit has passed since the lookup, then expired.
    run_until_not_in_use root expire test/busybox:latest
    [ "$status" -eq 0 ]
    [ "$output" = "expired docker:$REGISTRY_ANON/test/busybox:latest $id" ]
    run simg "$BED_USER" lookup test/busybox:latest
    [ "$status" -eq 2 ]
}

@test "shifterimg gateway: autoexpire is for administrators" {
    run --separate-stderr simg "$BED_USER" autoexpire
    [ "$status" -eq 1 ]
    [[ "$stderr" == "shifterimg: autoexpire: not permitted (403 forbidden from gateway "*"administrators only"* ]]
    run simg root autoexpire
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" != *expired* ]]
}

@test "shifterimg gateway: an import user and an administrator import a squashfs file; others are refused" {
    SIMG_CONFIG=$WORK/bed2.conf run simg "$BED_USER2" lookup "127.0.0.1:$SLOW_PORT/test/busybox:latest"
    [ "$status" -eq 0 ]
    cp "$WORK/images2/${output#sha256:}.squashfs" "$WORK/custom.sqfs"
    chmod 644 "$WORK/custom.sqfs"
    # A relative FILE is made absolute here, since the gateway has another working directory.
    run simg "$BED_USER" import custom.sqfs mytool:1
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^imported\ custom:mytool:1\ sha256:[0-9a-f]{64}$ ]]
    id=${output##* }
    [ "$id" = "sha256:$(sha256sum "$WORK/custom.sqfs" | cut -d' ' -f1)" ]
    run simg "$BED_USER2" lookup custom:mytool:1
    [ "$status" -eq 0 ]
    [ "$output" = "$id" ]
    run simg root --user "$BED_USER2" import "$WORK/custom.sqfs" custom:admintool
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "imported custom:admintool:latest $id" ]
    run simg "$BED_USER" lookup custom:admintool
    [ "$status" -eq 2 ]
    run --separate-stderr simg "$BED_USER2" import custom.sqfs other:1
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == "shifterimg: import custom.sqfs other:1: not permitted (403 forbidden from gateway "*"administrators and import users only"* ]]
}

@test "shifterimg gateway: any user imports docker-archive and oci-archive files, converted like a pull and private to them" {
    local archives=$WORK/archives
    install -d -m 755 "$archives"
    # The image pulled from the registry first, public, for comparison.
    run simg root pull "$REGISTRY_ANON/test/layered:latest"
    [ "$status" -eq 0 ]
    local pulled_id=${output##* }
    # Archives as docker save / podman save and an OCI layout packed as a tar are written, by skopeo.
    skopeo copy -q "oci:$OCI_LAYOUT:layered" "docker-archive:$archives/layered-docker.tar:test/layered:1"
    skopeo copy -q "oci:$OCI_LAYOUT:layered" "oci-archive:$archives/layered-oci.tar"
    chown "$BED_USER2" "$archives"/*.tar
    chmod 600 "$archives"/*.tar
    # $BED_USER2 is neither an administrator nor an import user.
    run simg "$BED_USER2" import "$archives/layered-docker.tar" mine-docker:1
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^imported\ custom:mine-docker:1\ sha256:[0-9a-f]{64}$ ]]
    local docker_id=${output##* }
    run simg "$BED_USER2" import --format oci-archive "$archives/layered-oci.tar" mine-oci:1
    echo "$output"
    [ "$status" -eq 0 ]
    local oci_id=${output##* }
    # The OCI layout keeps the registry's manifest, which names every blob by its digest, so the
    # id is the pulled image's. docker save names its layers by nothing verifiable: its image gets
    # an id of its own, neither the registry's nor its configuration's digest.
    [ "$oci_id" = "$pulled_id" ]
    [ "$docker_id" != "$pulled_id" ]
    [ "$docker_id" != "$(skopeo inspect --raw "oci:$OCI_LAYOUT:layered" | jq -r .config.digest)" ]
    # The image that was public stays public: a private import of it shuts nobody out.
    [ "$(jq -c .userACL "$WORK/images/${pulled_id#sha256:}.meta.json")" = "[]" ]
    run simg "$BED_USER" lookup "$REGISTRY_ANON/test/layered:latest"
    [ "$status" -eq 0 ]
    [ "$output" = "$pulled_id" ]
    # The docker-archive's image, converted here: the same files, modes, owners and sizes, and the
    # same environment, as the pulled one.
    listing() { unsquashfs -lls "$WORK/images/${1#sha256:}.squashfs" | sed 1,3d | awk '{print $1, $2, $3, $NF}'; }
    [ "$(listing "$docker_id")" = "$(listing "$pulled_id")" ]
    [ "$(jq -c .env "$WORK/images/${docker_id#sha256:}.meta.json")" = "$(jq -c .env "$WORK/images/${pulled_id#sha256:}.meta.json")" ]
    # Private to the user who imported it: the squashfs file is root's alone, others cannot use it.
    [ "$(stat -c %a "$WORK/images/${docker_id#sha256:}.squashfs")" = 600 ]
    [ "$(jq -c .userACL "$WORK/images/${docker_id#sha256:}.meta.json")" = "[$UID2]" ]
    run simg "$BED_USER2" lookup custom:mine-docker:1
    [ "$status" -eq 0 ]
    [ "$output" = "$docker_id" ]
    run simg "$BED_USER" lookup custom:mine-docker:1
    [ "$status" -eq 2 ]
    # The gateway opens the archive with the caller's rights: another user cannot import it (with
    # --format given, shifterimg does not read the file's first bytes itself first).
    run --separate-stderr simg "$BED_USER" import --format archive "$archives/layered-oci.tar" theirs:1
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"cannot be opened as uid $UID1: Permission denied"* ]]
    # A name another user's image has is not taken over, and an image is opened only to the
    # importer's own groups ($BED_USER2 is not in shiftergrp).
    install -m 644 "$archives/layered-docker.tar" "$archives/readable.tar"
    run --separate-stderr simg "$BED_USER" import "$archives/readable.tar" mine-docker:1
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"the name is taken by another user's image; choose another"* ]]
    run simg "$BED_USER2" lookup custom:mine-docker:1
    [ "$output" = "$docker_id" ]
    run --separate-stderr simg "$BED_USER2" import --group shiftergrp "$archives/readable.tar" shared:1
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"group $(getent group shiftergrp | cut -d: -f3) is not one of uid $UID2's"* ]]
    # Not an archive, an entry that leaves the archive, a directory: one line each, nothing stored.
    printf 'not an image\n' >"$archives/notes.txt"
    python3 -c 'import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as tar:
    data = b"x"; info = tarfile.TarInfo("../../escape"); info.size = len(data); tar.addfile(info, io.BytesIO(data))' "$archives/evil.tar"
    chmod 644 "$archives/notes.txt" "$archives/evil.tar"
    run --separate-stderr simg "$BED_USER2" import "$archives/notes.txt" bad:1
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == "shifterimg: import $archives/notes.txt bad:1: "*"not a tar archive"* ]]
    run --separate-stderr simg "$BED_USER2" import "$archives/evil.tar" bad:1
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"entry \"../../escape\" leaves the archive"* ]]
    run --separate-stderr simg "$BED_USER2" import "$archives" bad:1
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"is a directory; pack an OCI image layout first (tar -C $archives -cf $archives.tar .)"* ]]
    run simg "$BED_USER2" lookup custom:bad:1
    [ "$status" -eq 2 ]
    [ -z "$(find "$WORK/images" -maxdepth 1 -name '.import-*' -o -maxdepth 1 -name '.convert-*')" ]
}

# gateway_written: the bytes the gateway has written so far, all its threads together (wchar in
# /proc/PID/io: every write(2) to a file, its log and its database included).
gateway_written() {
    awk '$1 == "wchar:" { print $2 }' "/proc/$(cat "$WORK/gateway.pid")/io"
}

# hold_conversion_lock ID: takes the store's conversion lock of image ID (on descriptor $HOLD), so
# an import of that image waits for it: a running import the test can see, and end when it likes.
hold_conversion_lock() {
    LOCK=$WORK/images/.convert-${1#sha256:}.lock
    exec {HOLD}>"$LOCK"
    flock -x "$HOLD"
}

# wait_for_lock_waiter PID: returns once a process waits for $LOCK (a flock that waits shows in
# /proc/locks with "->" before it); fails when PID ended first, or after a minute.
wait_for_lock_waiter() {
    local inode
    inode=$(stat -c %i "$LOCK")
    for _ in $(seq 600); do
        grep -qE -- "-> FLOCK +ADVISORY +WRITE +[0-9]+ +[0-9a-f]+:[0-9a-f]+:$inode " /proc/locks && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# release_conversion_lock: lets go of the lock hold_conversion_lock took.
release_conversion_lock() {
    flock -u "$HOLD"
    exec {HOLD}>&-
}

@test "shifterimg gateway: a sparse archive, a zstd bomb and a file flood are refused with one line, and nothing is written" {
    local archives=$WORK/bombs
    install -d -m 755 "$archives" "$archives/src"
    # 2 GiB with 4 bytes of data at the end, as tar --sparse keeps it: about 10 KB of archive.
    truncate -s 2G "$archives/src/disk.img"
    printf 'data' | dd of="$archives/src/disk.img" bs=1 seek=$(((2 << 30) - 4)) conv=notrunc status=none
    tar --sparse -C "$archives/src" -cf "$archives/sparse.tar" disk.img
    # 2 GiB of zeros as a plain file, compressed by zstd to about 70 KB.
    truncate -s 2G "$archives/src/zeros"
    tar --zstd -C "$archives/src" -cf "$archives/bomb.tar.zst" zeros
    rm -rf "$archives/src"
    # 100,000 empty files, gzip-compressed to about 600 KB.
    python3 -c 'import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as tar:
    for n in range(100000):
        tar.addfile(tarfile.TarInfo("f/%d" % n), io.BytesIO(b""))' "$archives/flood.tar.gz"
    chown "$BED_USER2" "$archives"/*
    chmod 600 "$archives"/*
    [ "$(stat -c %s "$archives/sparse.tar")" -lt 65536 ]
    [ "$(stat -c %s "$archives/bomb.tar.zst")" -lt 262144 ]
    local name reason before after
    for name in sparse.tar bomb.tar.zst flood.tar.gz; do
        case $name in
            sparse.tar) reason='entry "disk.img" is a sparse file, which no image archive holds' ;;
            bomb.tar.zst) reason='has neither index.json (an OCI image layout) nor manifest.json (docker save); is it an image archive?' ;;
            flood.tar.gz) reason='more than 65536 entries, the limit for an image archive (archiveImportEntryLimit)' ;;
        esac
        before=$(gateway_written)
        run --separate-stderr simg "$BED_USER2" import "$archives/$name" bomb:1
        after=$(gateway_written)
        echo "$name: $stderr; the gateway wrote $((after - before)) bytes"
        [ "$status" -eq 1 ]
        [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
        [[ "$stderr" == "shifterimg: import $archives/$name bomb:1: "*"$reason" ]]
        # Its log line and its database, nothing of the gigabytes the archive stands for; no
        # staging directory was made.
        [ $((after - before)) -lt 1048576 ]
        [ -z "$(find "$WORK/images" -maxdepth 1 -name '.import-*')" ]
    done
    run simg "$BED_USER2" lookup custom:bomb:1
    [ "$status" -eq 2 ]
}

@test "shifterimg gateway: a user runs one archive import at a time (429 for the next); another user's import goes on meanwhile" {
    local archives=$WORK/held
    install -d -m 755 "$archives"
    skopeo copy -q "oci:$OCI_LAYOUT:busybox" "oci-archive:$archives/busybox.tar"
    skopeo copy -q "oci:$OCI_LAYOUT:layered" "oci-archive:$archives/layered.tar"
    chmod 644 "$archives"/*.tar
    # The busybox archive's image is named by its manifest's digest. While the test holds the
    # store's conversion lock for it, $BED_USER's import of it runs, waiting for the lock.
    local id held
    id=$(tar -xOf "$archives/busybox.tar" --wildcards --no-anchored index.json | jq -r '.manifests[0].digest')
    hold_conversion_lock "$id"
    simg "$BED_USER" import "$archives/busybox.tar" held:1 >"$archives/held.out" 2>&1 3>&- {HOLD}>&- &
    held=$!
    wait_for_lock_waiter "$held"
    run --separate-stderr simg "$BED_USER" import "$archives/layered.tar" second:1
    echo "$stderr"
    [ "$status" -eq 1 ]
    [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
    [[ "$stderr" == "shifterimg: import $archives/layered.tar second:1: refused for now (429 too many requests from gateway "*"uid $UID1 already runs 1 archive import, the most one user may at once (archiveImportsPerUser); try again when it ends" ]]
    run simg "$BED_USER2" import "$archives/layered.tar" admitted:1
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^imported\ custom:admitted:1\ sha256:[0-9a-f]{64}$ ]]
    # The lock let go, the held import ends, and the user may import again.
    release_conversion_lock
    wait "$held"
    cat "$archives/held.out"
    [ "$(cat "$archives/held.out")" = "imported custom:held:1 $id" ]
    run simg "$BED_USER" import "$archives/layered.tar" second:1
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "shifterimg gateway: a custom: name is its first importer's, reserved while the import runs; the tag and the gateway agree; private records are closed" {
    local dir=$WORK/names
    install -d -m 755 "$dir" "$dir/src"
    echo "the owner's image" >"$dir/src/who"
    mksquashfs "$dir/src" "$dir/owner.sqfs" -quiet -no-progress -noappend >/dev/null
    skopeo copy -q "oci:$OCI_LAYOUT:layered" "oci-archive:$dir/other.tar"
    chown "$BED_USER" "$dir/owner.sqfs"
    chown "$BED_USER2" "$dir/other.tar"
    chmod 600 "$dir/owner.sqfs" "$dir/other.tar"
    local id held
    id=sha256:$(sha256sum "$dir/owner.sqfs" | cut -d' ' -f1)
    # While the test holds the store's conversion lock of the owner's image, the owner's import
    # (an import user's squashfs file, shared with $BED_USER2) runs, waiting for it: the slow import
    # of the attack, made observable.
    hold_conversion_lock "$id"
    simg "$BED_USER" --user "$BED_USER2" import "$dir/owner.sqfs" contested:1 >"$dir/held.out" 2>&1 3>&- {HOLD}>&- &
    held=$!
    wait_for_lock_waiter "$held"
    # Meanwhile another user's import of the name, of any kind and by anyone, root included, is
    # refused at once: the name was reserved when the import started.
    run --separate-stderr simg "$BED_USER2" import "$dir/other.tar" contested:1
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == "shifterimg: import $dir/other.tar contested:1: "*"the name is taken by another user's image; choose another" ]]
    run --separate-stderr simg root import "$dir/owner.sqfs" contested:1
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"the name is taken by another user's image; choose another" ]]
    release_conversion_lock
    wait "$held"
    cat "$dir/held.out"
    [ "$(cat "$dir/held.out")" = "imported custom:contested:1 $id" ]
    # After it too; the store's tag and the gateway's answer name the owner's image for both users.
    run --separate-stderr simg "$BED_USER2" import "$dir/other.tar" contested:1
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"the name is taken by another user's image; choose another" ]]
    [ "$(cat "$WORK/images/tags/custom%3Acontested%3A1")" = "$id" ]
    run simg "$BED_USER2" lookup custom:contested:1
    [ "$output" = "$id" ]
    run simg "$BED_USER" lookup custom:contested:1
    [ "$output" = "$id" ]
    [ -z "$(find "$WORK/images" -maxdepth 1 -name '.import-*' -o -maxdepth 1 -name '.convert-*')" ]
    # The private image's full record (environment, labels, source) is root's; its access list
    # alone is readable, and nobody lists the names in the tag index (a name one knows resolves).
    local record=$WORK/images/${id#sha256:}.meta.json access=$WORK/images/${id#sha256:}.access.json
    [ "$(stat -c '%a %U' "$record")" = "600 root" ]
    [ "$(stat -c '%a %U' "$access")" = "644 root" ]
    [ "$(stat -c %a "$WORK/images/tags")" = 711 ]
    run runuser -u "$BED_USER2" -- cat "$record"
    [ "$status" -eq 1 ]
    [[ "$output" == *"Permission denied"* ]]
    run runuser -u "$BED_USER2" -- jq -c '[.userACL, .source, .env]' "$access"
    [ "$status" -eq 0 ]
    [ "$output" = "[[$UID1,$UID2],\"\",[]]" ]
    run runuser -u "$BED_USER2" -- ls "$WORK/images/tags"
    [ "$status" -ne 0 ]
    [[ "$output" == *"Permission denied"* ]]
    run runuser -u "$BED_USER2" -- cat "$WORK/images/tags/custom%3Acontested%3A1"
    [ "$output" = "$id" ]
}

@test "shifterimg gateway: a gateway killed during a squashfs import leaves nothing in the store after a restart; the name stays the importer's" {
    local dir=$WORK/killed
    install -d -m 755 "$dir" "$dir/src"
    echo "cut short" >"$dir/src/what"
    mksquashfs "$dir/src" "$dir/cut.sqfs" -quiet -no-progress -noappend >/dev/null
    chown "$BED_USER" "$dir/cut.sqfs"
    chmod 644 "$dir/cut.sqfs"
    local id held
    id=sha256:$(sha256sum "$dir/cut.sqfs" | cut -d' ' -f1)
    # The import waits for the image's conversion lock, which the test holds, with the file copied
    # into staging: killed there, the gateway leaves staging, a lock file and a reservation.
    hold_conversion_lock "$id"
    simg "$BED_USER" import "$dir/cut.sqfs" cut:1 >"$dir/held.out" 2>&1 3>&- {HOLD}>&- &
    held=$!
    wait_for_lock_waiter "$held"
    [ -n "$(find "$WORK/images" -maxdepth 1 -name '.import-*')" ]
    kill -KILL "$(cat "$WORK/gateway.pid")"
    wait "$held" || true
    release_conversion_lock
    start_gateway "$PORT"
    # Nothing of the import is left, and no tag names a missing image.
    [ -z "$(find "$WORK/images" -maxdepth 1 -name '.import-*' -o -maxdepth 1 -name '.convert-*')" ]
    [ ! -e "$WORK/images/tags/custom%3Acut%3A1" ]
    [ ! -e "$WORK/images/${id#sha256:}.squashfs" ]
    # The record says what happened, and the name is still the importer's: another user cannot take
    # it, the importer imports again.
    run --separate-stderr simg "$BED_USER" lookup custom:cut:1
    echo "$stderr"
    [ "$status" -eq 2 ]
    [[ "$stderr" == *"the gateway stopped during the import; import the file again"* ]]
    run --separate-stderr simg "$BED_USER2" import --format oci-archive "$dir/cut.sqfs" cut:1
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"the name is taken by another user's image; choose another" ]]
    run simg "$BED_USER" import "$dir/cut.sqfs" cut:1
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "imported custom:cut:1 $id" ]
}

@test "shifterimg gateway: saved registry credentials reach the gateway and make the image private" {
    run bash -c "printf '%s\n' '$REGISTRY_PASSWORD' | runuser -u $BED_USER -- env XDG_CONFIG_HOME=$WORK/cfg1 SHIFTER_CA_BUNDLE=$CA_BUNDLE '$SHIFTERIMG' --config '$WORK/udiRoot.conf' login -u '$REGISTRY_USER' --password-stdin '$REGISTRY_TOKEN'"
    echo "$output"
    [ "$status" -eq 0 ]
    run simg "$BED_USER" pull "$REGISTRY_TOKEN/test/busybox:latest"
    echo "$output"
    [ "$status" -eq 0 ]
    id=${lines[-1]##* }
    [ "$(jq -c .userACL "$WORK/images/${id#sha256:}.meta.json")" = "[$UID1]" ]
    run simg "$BED_USER2" lookup "$REGISTRY_TOKEN/test/busybox:latest"
    [ "$status" -eq 2 ]
    ! grep -qF "$REGISTRY_PASSWORD" "$WORK/gateway.log" "$WORK/state.sqlite" || false
    # Without saved credentials the registry refuses; the pull fails with the registry's reason.
    run --separate-stderr simg "$BED_USER2" pull "$REGISTRY_BASIC/test/busybox:latest"
    echo "$output"; echo "$stderr"
    [ "$status" -eq 1 ]
    [ "$(wc -l <<<"$stderr")" -eq 1 ]
    [[ "$stderr" == "shifterimg: pull $REGISTRY_BASIC/test/busybox:latest: pull of docker:$REGISTRY_BASIC/test/busybox:latest failed at the gateway: "?* ]]
}

@test "shifterimg gateway: an unreachable gateway gives one line naming every URL tried" {
    run --separate-stderr runuser -u "$BED_USER" -- "$SHIFTERIMG" --config "$WORK/unreachable.conf" images
    echo "$stderr"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [ "$(wc -l <<<"$stderr")" -eq 1 ]
    [[ "$stderr" == "shifterimg: images: cannot reach the image gateway: tried http://127.0.0.1:1 ("*"), http://127.0.0.1:$DEAD_PORT/ ("*")" ]]
    run --separate-stderr runuser -u "$BED_USER" -- "$SHIFTERIMG" --config "$WORK/unreachable.conf" pull test/busybox
    [ "$status" -eq 1 ]
    [[ "$stderr" == "shifterimg: pull test/busybox: cannot reach the image gateway: tried http://127.0.0.1:1 "* ]]
}

@test "shifterimg gateway: bad references and bad site configurations fail before any request" {
    run --separate-stderr simg "$BED_USER" pull Not..Valid
    [ "$status" -eq 1 ]
    [[ "$stderr" == "shifterimg: pull Not..Valid: image \"Not..Valid\": "* ]]
    run --separate-stderr simg "$BED_USER" lookup local:/tmp
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"docker and custom images"* ]]
    run --separate-stderr simg "$BED_USER" pull custom:mytool:1
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"shifterimg import"* ]]
    grep -v '^system=' "$WORK/udiRoot.conf" >"$WORK/nosystem.conf"
    chmod 644 "$WORK/nosystem.conf"
    run --separate-stderr runuser -u "$BED_USER" -- "$SHIFTERIMG" --config "$WORK/nosystem.conf" images
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"system is not set"* ]]
    cp "$WORK/udiRoot.conf" "$WORK/owned.conf"
    chown "$BED_USER" "$WORK/owned.conf"
    run --separate-stderr runuser -u "$BED_USER" -- "$SHIFTERIMG" --config "$WORK/owned.conf" images
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"must be owned by root"* ]]
}

@test "shifterimg local mode: root imports and expires; users are refused; autoexpire needs a gateway" {
    local=(--config "$WORK/local.conf")
    [ -f "$WORK/custom.sqfs" ] || cp "$(ls "$WORK"/images2/*.squashfs | head -n1)" "$WORK/custom.sqfs"
    run "$SHIFTERIMG" "${local[@]}" import "$WORK/custom.sqfs" localtool:2
    echo "$output"
    [ "$status" -eq 0 ]
    id=${output##* }
    [ "$output" = "imported custom:localtool:2 $id" ]
    [ -f "$WORK/local-images/${id#sha256:}.squashfs" ]
    [ "$(cat "$WORK/local-images/tags/custom%3Alocaltool%3A2")" = "$id" ]
    run "$SHIFTERIMG" "${local[@]}" lookup custom:localtool:2
    [ "$output" = "$id" ]
    [ "$(stat -c %a "$WORK/local-images/${id#sha256:}.squashfs")" = 644 ]
    # A private import: only root (the runtime) reads the file and its record; its access list
    # alone stays readable.
    mkdir -p "$WORK/privtree/etc" && echo private > "$WORK/privtree/etc/marker"
    mksquashfs "$WORK/privtree" "$WORK/private.sqfs" -quiet -noappend >/dev/null
    run "$SHIFTERIMG" "${local[@]}" import --user "$BED_USER" "$WORK/private.sqfs" privtool:1
    echo "$output"
    [ "$status" -eq 0 ]
    private_id=${output##* }
    [ "$(stat -c %a "$WORK/local-images/${private_id#sha256:}.squashfs")" = 600 ]
    [ "$(stat -c %a "$WORK/local-images/${private_id#sha256:}.meta.json")" = 600 ]
    [ "$(stat -c %a "$WORK/local-images/${private_id#sha256:}.access.json")" = 644 ]
    run --separate-stderr "$SHIFTERIMG" "${local[@]}" import --format squashfs "$WORK/local.conf" broken:1
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"not a squashfs file"* ]]
    # Without --format, a file that is not squashfs is taken for an image archive.
    run --separate-stderr "$SHIFTERIMG" "${local[@]}" import "$WORK/local.conf" broken:1
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"not a tar archive"* ]]
    # An image archive, converted here by root.
    skopeo copy -q "oci:$OCI_LAYOUT:busybox" "oci-archive:$WORK/busybox-oci.tar"
    run "$SHIFTERIMG" "${local[@]}" import "$WORK/busybox-oci.tar" localarchive:1
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(unsquashfs -cat "$WORK/local-images/${output##* sha256:}.squashfs" etc/os-release | head -1)" = 'NAME="Shifter test busybox"' ]
    [ -z "$(find "$WORK/local-images" -maxdepth 1 -name '.import-*')" ]
    run --separate-stderr runuser -u "$BED_USER" -- "$SHIFTERIMG" "${local[@]}" import "$WORK/custom.sqfs" usertool:1
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"only root may import"* ]]
    run --separate-stderr runuser -u "$BED_USER" -- "$SHIFTERIMG" "${local[@]}" expire custom:localtool:2
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"only root may expire"* ]]
    run --separate-stderr "$SHIFTERIMG" "${local[@]}" autoexpire
    [ "$status" -eq 1 ]
    [[ "$stderr" == "shifterimg: autoexpire: needs an image gateway"* ]]
    run "$SHIFTERIMG" "${local[@]}" expire custom:localtool:2
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "expired custom:localtool:2 $id" ]
    [ ! -e "$WORK/local-images/${id#sha256:}.squashfs" ]
}
