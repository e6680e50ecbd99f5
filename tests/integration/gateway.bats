#!/usr/bin/env bats
# shifter-imagegw against the bed's registries and munged, with real credentials of root and the
# two non-root users: pull, lookup, list, queue, expire, autoexpire, import, private images,
# concurrent pulls, bad input, metrics, a gateway killed in the middle of a pull, and the
# autoexpire timer.

load helpers
bats_require_minimum_version 1.5.0

UID1=$(id -u "$BED_USER")
UID2=$(id -u "$BED_USER2")

setup_file() {
    export WORK=$BATS_FILE_TMPDIR/gw
    mkdir -p "$WORK/images"
    chmod 755 "$BATS_FILE_TMPDIR" "$WORK" "$WORK/images"
    # Files to import: the gateway opens them with the caller's rights, so they sit where the users
    # may search, which bats's own temporary directory is not.
    IMPORTS=$(mktemp -d /tmp/shifter-gw-import.XXXXXX)
    chmod 755 "$IMPORTS"
    export IMPORTS
    PORT=$(free_port)
    HELD_PORT=$(free_port)
    export PORT HELD_PORT
    cat >"$WORK/imagegw.conf" <<CONF
# The gateway of the integration tests.
{
    "listen": "127.0.0.1:$PORT",
    "database": "$WORK/state.sqlite",
    "workers": 2,
    "systems": {"bed": {"imagePath": "$WORK/images"}},
    "registries": {
        "anon": {"url": "https://$REGISTRY_ANON", "caBundle": "$CA_BUNDLE", "auth": "anonymous"},
        "token": {"url": "https://$REGISTRY_TOKEN", "caBundle": "$CA_BUNDLE", "auth": "user"},
        "basic": {"url": "https://$REGISTRY_BASIC", "caBundle": "$CA_BUNDLE", "auth": "user"},
        "held": {"url": "https://127.0.0.1:$HELD_PORT", "caBundle": "$CA_BUNDLE", "auth": "anonymous"}
    },
    "allowUnlistedRegistries": true,
    "defaultRegistry": "$REGISTRY_ANON",
    "minPullIntervalSeconds": 3600,
    "jobTimeLimitSeconds": 10,
    "expireAfterSeconds": 3600,
    "maxBodyBytes": 2048,
    "admins": ["root"],
    "importUsers": ["$BED_USER"]
}
CONF
    # Started at once, so that nothing takes its port meanwhile; only the test of two users
    # pulling one tag pulls through it.
    start_held_registry
    start_gateway "$PORT"
}

teardown_file() {
    stop_gateway
    kill "$(cat "$WORK/held.pid")" 2>/dev/null || true
    rm -rf "$IMPORTS"
}

teardown() {
    # The autoexpire timer test runs a gateway of its own; it stops whatever the test's outcome.
    [ -z "${TIMER_WORK:-}" ] || WORK=$TIMER_WORK stop_gateway
    # A pull held by the held registry goes on, and the stalling registry stops (a test's
    # variables do not reach teardown_file).
    [ -z "${HOLDING:-}" ] || touch "$WORK/held.release"
    [ -z "${STALL_PID:-}" ] || kill "$STALL_PID" 2>/dev/null || true
    [ -z "${FUSE_MOUNT:-}" ] || umount "$FUSE_MOUNT" 2>/dev/null || umount -l "$FUSE_MOUNT" 2>/dev/null || true
}

# api USER METHOD PATH [BODY [MUNGE-PAYLOAD]]: one request with a fresh credential of USER; sets
# $status_code and $body.
api() {
    local user=$1 method=$2 path=$3 data=${4:-} payload=${5:-} credential
    if [ -n "$payload" ]; then
        credential=$(runuser -u "$user" -- munge -s "$payload")
    else
        credential=$(runuser -u "$user" -- munge -n)
    fi
    local args=(-s -o "$WORK/body" -w '%{http_code}' -X "$method" -H "authentication: $credential")
    [ -z "$data" ] || args+=(--data-binary "$data")
    status_code=$(curl "${args[@]}" "http://127.0.0.1:$PORT$path")
    body=$(cat "$WORK/body")
}

# wait_status USER TAG STATUS: polls the lookup of docker TAG until it has STATUS.
wait_status() {
    local user=$1 tag=$2 want=$3 deadline=$((SECONDS + 90)) got=
    while ((SECONDS < deadline)); do
        api "$user" GET "/api/lookup/bed/docker/$tag/"
        got=$(jq -r .status <<<"$body" 2>/dev/null)
        [ "$got" = "$want" ] && return 0
        if [ "$got" = FAILURE ] && [ "$want" != FAILURE ]; then break; fi
        sleep 0.3
    done
    echo "lookup of $tag: $status_code $body (wanted $want)" >&2
    return 1
}

# wait_listed USER TAG: polls the list until it has docker TAG, READY. Unlike wait_status it looks
# nothing up, so the image does not count as used by a job.
wait_listed() {
    local user=$1 tag=$2 deadline=$((SECONDS + 90))
    while ((SECONDS < deadline)); do
        api "$user" GET /api/list/bed/
        jq -e --arg tag "$REGISTRY_ANON/$tag" '.list | map(.tag) | index($tag)' <<<"$body" >/dev/null && return 0
        sleep 0.3
    done
    echo "list: $status_code $body (wanted $tag)" >&2
    return 1
}

# write_timer_config INTERVAL: $WORK/imagegw.conf for the autoexpire timer test: listens on $PORT,
# runs autoexpire every INTERVAL seconds, expires images 1 s after their last use, and counts an
# image looked up within a day as used by a job.
write_timer_config() {
    cat >"$WORK/imagegw.conf" <<CONF
{
    "listen": "127.0.0.1:$PORT",
    "database": "$WORK/state.sqlite",
    "systems": {"bed": {"imagePath": "$WORK/images"}},
    "registries": {"anon": {"url": "https://$REGISTRY_ANON", "caBundle": "$CA_BUNDLE", "auth": "anonymous"}},
    "defaultRegistry": "$REGISTRY_ANON",
    "expireAfterSeconds": 1,
    "jobTimeLimitSeconds": 86400,
    "autoexpireIntervalSeconds": $1,
    "admins": ["root"]
}
CONF
}

# metric SAMPLE: the value of SAMPLE (a name with its labels, if any) at the gateway's /metrics.
metric() {
    curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v sample="$1" '$1 == sample { print $2 }'
}

# wait_logged TEXT TAG: waits until gateway.log has a TEXT line about TAG. Some lines are written
# just after the record is saved, so a lookup can see the new status before the line is there.
wait_logged() {
    local deadline=$((SECONDS + 60))
    until grep -F "$1" "$WORK/gateway.log" | grep -qF "$2"; do
        ((SECONDS < deadline)) || { echo "no '$1' line for $2 in gateway.log after 60 s" >&2; return 1; }
        sleep 0.2
    done
}

# wait_exited PID: waits until process PID has exited (it is gone, or a zombie, which holds no
# port any more), so that a gateway can be started where it listened. 30 s bounds a hung one.
wait_exited() {
    local pid=$1 deadline=$((SECONDS + 30)) stat
    while stat=$(cat "/proc/$pid/stat" 2>/dev/null); do
        # The state is the field after the command name in parentheses.
        stat=${stat##*") "}
        [ "${stat%% *}" = Z ] && return 0
        ((SECONDS < deadline)) || { echo "process $pid has not exited after 30 s (state ${stat%% *})" >&2; return 1; }
        sleep 0.1
    done
}

# start_held_registry: a TCP relay to the anonymous registry on $HELD_PORT that holds every
# connection, unanswered, until $WORK/held.release exists, so that a pull through it is certainly
# still running until the test lets it go; its pid in $WORK/held.pid. TLS passes through
# untouched; the registry's certificate names 127.0.0.1, whatever the port.
start_held_registry() {
    python3 -u - "$HELD_PORT" "${REGISTRY_ANON##*:}" "$WORK/held.release" >"$WORK/held.log" 2>&1 3>&- <<'PY' &
import os, socket, sys, threading, time
listen_port, target_port, release = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def pump(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, target):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
def relay(client):
    while not os.path.exists(release):
        time.sleep(0.05)
    upstream = socket.create_connection(("127.0.0.1", target_port))
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
    pump(client, upstream)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen(16)
print("ready", flush=True)
while True:
    client, _ = server.accept()
    threading.Thread(target=relay, args=(client,), daemon=True).start()
PY
    echo $! >"$WORK/held.pid"
    local deadline=$((SECONDS + 30))
    until grep -q ready "$WORK/held.log" 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "the held registry relay did not start in 30 s" >&2; cat "$WORK/held.log" >&2; return 1; }
        sleep 0.1
    done
}

@test "gateway: health and metrics need no credential; the API does" {
    run curl -sf "http://127.0.0.1:$PORT/healthz"
    [ "$status" -eq 0 ]
    code=$(curl -s -o "$WORK/body" -w '%{http_code}' "http://127.0.0.1:$PORT/api/list/bed/")
    [ "$code" = 401 ]
    [ "$(jq -r .error "$WORK/body")" = unauthorized ]
    code=$(curl -s -o "$WORK/body" -w '%{http_code}' -H 'authentication: MUNGE:forged:' "http://127.0.0.1:$PORT/api/list/bed/")
    [ "$code" = 401 ]
    # munged refuses a credential used twice.
    credential=$(runuser -u "$BED_USER" -- munge -n)
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "authentication: $credential" "http://127.0.0.1:$PORT/api/list/bed/")" = 200 ]
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "authentication: $credential" "http://127.0.0.1:$PORT/api/list/bed/")" = 401 ]
}

@test "gateway: a user pulls a public image; lookup, list and the store agree" {
    api "$BED_USER" POST /api/pull/bed/docker/test/busybox:latest/
    [ "$status_code" = 200 ]
    [ "$(jq -r .tag <<<"$body")" = "$REGISTRY_ANON/test/busybox:latest" ]
    wait_status "$BED_USER2" test/busybox:latest READY
    id=$(jq -r .id <<<"$body")
    [[ $id == sha256:* ]]
    [ "$(jq -r '.ENV | length' <<<"$body")" -ge 1 ]
    [ -f "$WORK/images/${id#sha256:}.squashfs" ]
    [ "$(stat -c %a "$WORK/images/${id#sha256:}.squashfs")" = 644 ]
    [ "$(cat "$WORK/images/tags/docker%3A127.0.0.1%3A5000%2Ftest%2Fbusybox%3Alatest")" = "$id" ]
    api "$BED_USER2" GET /api/list/bed/
    [ "$status_code" = 200 ]
    jq -e --arg id "$id" '.list | map(.id) | index($id)' <<<"$body"
    # The same tag again within the minimum interval: no new pull.
    api "$BED_USER2" POST /api/pull/bed/docker/test/busybox:latest/
    [ "$(jq -r .status <<<"$body")" = READY ]
    [ "$(grep 'pull started' "$WORK/gateway.log" | grep -c "$REGISTRY_ANON/test/busybox:latest")" = 1 ]
}

@test "gateway: two users pulling one tag at once cause one pull" {
    # The first pull goes through a relay that holds it, so it is certainly still running when
    # the others ask, however slow the machine: they join it.
    HOLDING=1
    held=127.0.0.1:$HELD_PORT
    joined=$(metric 'shifter_gateway_pulls_total{outcome="joined"}')
    api "$BED_USER" POST "/api/pull/bed/docker/$held/test/multiarch:latest/"
    [ "$status_code" = 200 ]
    wait_status "$BED_USER" "$held/test/multiarch:latest" PULLING
    for user in "$BED_USER2" root; do
        api "$user" POST "/api/pull/bed/docker/$held/test/multiarch:latest/"
        [ "$status_code" = 200 ]
        [ "$(jq -r .status <<<"$body")" = PULLING ]
    done
    [ "$(metric 'shifter_gateway_pulls_total{outcome="joined"}')" = $((joined + 2)) ]
    touch "$WORK/held.release"
    wait_status root "$held/test/multiarch:latest" READY
    # "pull finished" is logged just after the record is saved READY.
    wait_logged 'pull finished' test/multiarch:latest
    [ "$(grep 'pull started' "$WORK/gateway.log" | grep -c test/multiarch:latest)" = 1 ]
    [ "$(grep 'pull finished' "$WORK/gateway.log" | grep -c test/multiarch:latest)" = 1 ]
}

@test "gateway: two tags of one digest pulled at once convert it once" {
    # One image under two tags of a repository of its own (in Docker's manifest format, so its
    # digest is none the store has yet).
    local tag
    for tag in a b; do
        skopeo copy -q -f v2s2 --dest-cert-dir "$CA_DIR" "oci:$OCI_LAYOUT:busybox" "docker://$REGISTRY_ANON/test/twotags:$tag"
    done
    [ "$(skopeo inspect --cert-dir "$CA_DIR" "docker://$REGISTRY_ANON/test/twotags:a" | jq -r .Digest)" = \
      "$(skopeo inspect --cert-dir "$CA_DIR" "docker://$REGISTRY_ANON/test/twotags:b" | jq -r .Digest)" ]
    # Both pulls wait at the held relay until both have started, then go on together.
    HOLDING=1
    rm -f "$WORK/held.release"
    held=127.0.0.1:$HELD_PORT
    for tag in a b; do
        api "$BED_USER" POST "/api/pull/bed/docker/$held/test/twotags:$tag/"
        [ "$status_code" = 200 ]
    done
    wait_status "$BED_USER" "$held/test/twotags:a" PULLING
    wait_status "$BED_USER" "$held/test/twotags:b" PULLING
    touch "$WORK/held.release"
    wait_status "$BED_USER" "$held/test/twotags:a" READY
    local id_a=$(jq -r .id <<<"$body")
    wait_status "$BED_USER" "$held/test/twotags:b" READY
    [ "$(jq -r .id <<<"$body")" = "$id_a" ]
    wait_logged 'pull finished' test/twotags:a
    wait_logged 'pull finished' test/twotags:b
    grep 'pull finished' "$WORK/gateway.log" | grep test/twotags
    # One of them converted; the other found the image in the store.
    [ "$(grep 'pull finished' "$WORK/gateway.log" | grep test/twotags | grep -c 'already_present=false')" = 1 ]
    [ "$(grep 'pull finished' "$WORK/gateway.log" | grep test/twotags | grep -c 'already_present=true')" = 1 ]
    [ -z "$(find "$WORK/images" -maxdepth 1 -name '.convert-*')" ]
}

@test "gateway: a private image is invisible to other users" {
    api "$BED_USER" POST /api/pull/bed/docker/test/layered:latest/ "{\"allowed_uids\": [$UID1]}"
    [ "$status_code" = 200 ]
    wait_status "$BED_USER" test/layered:latest READY
    id=$(jq -r .id <<<"$body")
    [ "$(jq -c .userACL <<<"$body")" = "[$UID1]" ]
    [ "$(stat -c %a "$WORK/images/${id#sha256:}.squashfs")" = 600 ]
    [ "$(jq -c .userACL "$WORK/images/${id#sha256:}.meta.json")" = "[$UID1]" ]
    api "$BED_USER2" GET /api/lookup/bed/docker/test/layered:latest/
    [ "$status_code" = 404 ]
    api "$BED_USER2" GET /api/list/bed/
    ! jq -e --arg id "$id" '.list | map(.id) | index($id)' <<<"$body" || false
    api "$BED_USER2" GET /api/expire/bed/docker/test/layered:latest/
    [ "$status_code" = 404 ]
    api root GET /api/lookup/bed/docker/test/layered:latest/
    [ "$status_code" = 200 ]
}

@test "gateway: registry credentials travel in the munge payload and make the image private" {
    payload=$(jq -nc --arg u "$REGISTRY_USER" --arg p "$REGISTRY_PASSWORD" '{credentials: {username: $u, password: $p}}')
    api "$BED_USER" POST "/api/pull/bed/docker/$REGISTRY_TOKEN/test/busybox:latest/" "" "$payload"
    [ "$status_code" = 200 ]
    wait_status "$BED_USER" "$REGISTRY_TOKEN/test/busybox:latest" READY
    [ "$(jq -c .userACL <<<"$body")" = "[$UID1]" ]
    api "$BED_USER2" GET "/api/lookup/bed/docker/$REGISTRY_TOKEN/test/busybox:latest/"
    [ "$status_code" = 404 ]
    ! grep -qF "$REGISTRY_PASSWORD" "$WORK/gateway.log" "$WORK/state.sqlite" || false
    # Without credentials the registry refuses, and the record says so.
    api "$BED_USER2" POST "/api/pull/bed/docker/$REGISTRY_BASIC/test/busybox:latest/"
    wait_status "$BED_USER2" "$REGISTRY_BASIC/test/busybox:latest" FAILURE
    [ -n "$(jq -r .status_message <<<"$body")" ]
}

@test "gateway: bad input gets 400, 403 or 404 with a JSON reason" {
    api "$BED_USER" POST /api/pull/bed/docker/test/busybox:latest/ '{"allowed_uids": '
    [ "$status_code" = 400 ]
    [ "$(jq -r .error <<<"$body")" = bad-request ]
    api "$BED_USER" GET /api/list/nosuchsystem/
    [ "$status_code" = 400 ]
    [[ $(jq -r .message <<<"$body") == *nosuchsystem* ]]
    api "$BED_USER" POST /api/pull/bed/docker/Not..Valid/
    [ "$status_code" = 400 ]
    api "$BED_USER" POST /api/pull/bed/docker/test/busybox:latest/ "{\"allowed_uids\": [$(seq -s, 1 1000)]}"
    [ "$status_code" = 400 ]
    [[ $(jq -r .message <<<"$body") == *larger* ]]
    api "$BED_USER" GET /api/nothing/bed/
    [ "$status_code" = 404 ]
    api "$BED_USER" GET /api/autoexpire/bed/
    [ "$status_code" = 403 ]
    api "$BED_USER" GET /api/metrics/bed/
    [ "$status_code" = 403 ]
    api "$BED_USER" GET "/api/expire/bed/docker/test/busybox:latest/"
    [ "$status_code" = 403 ]
}

@test "gateway: queue, lookup metrics, expire and autoexpire" {
    api "$BED_USER" GET /api/queue/bed/
    [ "$status_code" = 200 ]
    jq -e '.list | type == "array"' <<<"$body"
    api root GET /api/metrics/bed/
    [ "$status_code" = 200 ]
    jq -e 'length > 0 and (.[0] | has("uid") and has("tag"))' <<<"$body"
    api root GET /api/autoexpire/bed/
    [ "$status_code" = 200 ]
    [ "$(jq '.expired | length' <<<"$body")" = 0 ]
    # The owner expires a private image once no job can still be using it.
    api "$BED_USER" GET /api/lookup/bed/docker/test/layered:latest/
    id=$(jq -r .id <<<"$body")
    api "$BED_USER" GET /api/expire/bed/docker/test/layered:latest/
    [ "$status_code" = 409 ]
    # Refused until the job time limit has passed since the lookup, then expired. An expire is no
    # lookup, so asking again does not keep the image in use.
    for _ in $(seq 60); do
        api "$BED_USER" GET /api/expire/bed/docker/test/layered:latest/
        echo "$status_code $body"
        [ "$status_code" = 200 ] && break
        [ "$status_code" = 409 ]
        sleep 0.5
    done
    [ "$status_code" = 200 ]
    [ "$(jq -r '.expired[0].status' <<<"$body")" = EXPIRED ]
    [ ! -e "$WORK/images/${id#sha256:}.squashfs" ]
    [ ! -e "$WORK/images/${id#sha256:}.meta.json" ]
    api "$BED_USER" GET /api/lookup/bed/docker/test/layered:latest/
    [ "$status_code" = 404 ]
}

@test "gateway: an import user imports a squashfs file as a custom image" {
    api "$BED_USER" GET /api/lookup/bed/docker/test/busybox:latest/
    id=$(jq -r .id <<<"$body")
    cp "$WORK/images/${id#sha256:}.squashfs" "$IMPORTS/custom.sqfs"
    chmod 644 "$IMPORTS/custom.sqfs"
    api "$BED_USER" POST /api/doimport/bed/custom/mytool:1/ "{\"filepath\": \"$IMPORTS/custom.sqfs\"}"
    [ "$status_code" = 200 ]
    [ "$(jq -r .status <<<"$body")" = READY ]
    [ -f "$WORK/images/tags/custom%3Amytool%3A1" ]
    api "$BED_USER2" POST /api/doimport/bed/custom/other:1/ "{\"filepath\": \"$IMPORTS/custom.sqfs\"}"
    [ "$status_code" = 403 ]
    printf 'not a squashfs image\n' >"$IMPORTS/notes.txt"
    chmod 644 "$IMPORTS/notes.txt"
    api "$BED_USER" POST /api/doimport/bed/custom/bad:1/ "{\"filepath\": \"$IMPORTS/notes.txt\"}"
    [ "$status_code" = 400 ]
    [[ $(jq -r .message <<<"$body") == *"not a squashfs file"* ]]
}

@test "gateway: an import opens the file with the import user's own rights" {
    api "$BED_USER" GET /api/lookup/bed/docker/test/busybox:latest/
    id=$(jq -r .id <<<"$body")
    local image=$WORK/images/${id#sha256:}.squashfs
    # Another user's private image file, as a store keeps one: mode 0600, owned by $BED_USER2. The
    # gateway, as root, could read it; the import user may not, so it must not become public.
    install -m 600 -o "$BED_USER2" "$image" "$IMPORTS/theirs.sqfs"
    api "$BED_USER" POST /api/doimport/bed/custom/theirs:1/ "{\"filepath\": \"$IMPORTS/theirs.sqfs\"}"
    echo "$status_code $body"
    [ "$status_code" = 403 ]
    [ "$(jq -r .error <<<"$body")" = forbidden ]
    [ "$(jq -r .message <<<"$body")" = "import custom:theirs:1: \"$IMPORTS/theirs.sqfs\": cannot be opened as uid $UID1: Permission denied" ]
    api "$BED_USER" GET /api/lookup/bed/custom/theirs:1/
    [ "$status_code" = 404 ]
    [ ! -e "$WORK/images/tags/custom%3Atheirs%3A1" ]
    # The gateway's own files are out of reach too.
    api "$BED_USER" POST /api/doimport/bed/custom/conf:1/ "{\"filepath\": \"$WORK/imagegw.conf\"}"
    [ "$status_code" = 403 ]
    # In a directory the import user cannot search, a file that is there and one that is not answer
    # alike: the user learns nothing their own rights would not tell them.
    install -d -m 700 -o "$BED_USER2" "$IMPORTS/private"
    install -m 644 -o "$BED_USER2" "$image" "$IMPORTS/private/there.sqfs"
    api "$BED_USER" POST /api/doimport/bed/custom/probe:1/ "{\"filepath\": \"$IMPORTS/private/there.sqfs\"}"
    there="$status_code $(jq -r .message <<<"$body")"
    api "$BED_USER" POST /api/doimport/bed/custom/probe:1/ "{\"filepath\": \"$IMPORTS/private/absent.sqfs\"}"
    absent="$status_code $(jq -r .message <<<"$body")"
    echo "$there"
    echo "$absent"
    [ "${there/there.sqfs/FILE}" = "${absent/absent.sqfs/FILE}" ]
    [[ "$there" == "403 "*": Permission denied" ]]
    # The import user's own file, mode 0600, and one it reads through a supplementary group of the
    # group database are imported.
    install -m 600 -o "$BED_USER" "$image" "$IMPORTS/mine.sqfs"
    api "$BED_USER" POST /api/doimport/bed/custom/mine:1/ "{\"filepath\": \"$IMPORTS/mine.sqfs\"}"
    echo "$status_code $body"
    [ "$status_code" = 200 ]
    [ "$(jq -r .status <<<"$body")" = READY ]
    [ "$(jq -r .id <<<"$body")" = "sha256:$(sha256sum "$IMPORTS/mine.sqfs" | cut -d' ' -f1)" ]
    install -m 640 -o root -g shiftergrp "$image" "$IMPORTS/group.sqfs"
    api "$BED_USER" POST /api/doimport/bed/custom/group:1/ "{\"filepath\": \"$IMPORTS/group.sqfs\"}"
    echo "$status_code $body"
    [ "$status_code" = 200 ]
}

@test "gateway: a file on a FUSE filesystem is refused, the same file elsewhere is imported" {
    command -v bindfs >/dev/null || skip "bindfs is not installed"
    api "$BED_USER" GET /api/lookup/bed/docker/test/busybox:latest/
    id=$(jq -r .id <<<"$body")
    install -d -m 755 -o "$BED_USER" "$IMPORTS/plain" "$IMPORTS/fuse"
    install -m 644 -o "$BED_USER" "$WORK/images/${id#sha256:}.squashfs" "$IMPORTS/plain/tool.sqfs"
    # A FUSE mount of the import user's directory, open to others (allow_other, as a user's own
    # mount is where /etc/fuse.conf lets users set it; bindfs runs as root here): a daemon like it
    # could answer the open and then never a read.
    FUSE_MOUNT=$IMPORTS/fuse
    bindfs -o allow_other "$IMPORTS/plain" "$FUSE_MOUNT"
    [ "$(stat -f -c %T "$FUSE_MOUNT")" = fuseblk ] || [ "$(stat -f -c %T "$FUSE_MOUNT")" = fuse ]
    api "$BED_USER" POST /api/doimport/bed/custom/fused:1/ "{\"filepath\": \"$FUSE_MOUNT/tool.sqfs\"}"
    echo "$status_code $body"
    [ "$status_code" = 400 ]
    [ "$(jq -r .message <<<"$body")" = "import custom:fused:1: \"$FUSE_MOUNT/tool.sqfs\": it is on a FUSE filesystem, which the gateway does not read: its daemon could hold the import for ever; copy the file to a local or parallel filesystem and import that" ]
    [ ! -e "$WORK/images/tags/custom%3Afused%3A1" ]
    api "$BED_USER" POST /api/doimport/bed/custom/fused:1/ "{\"filepath\": \"$IMPORTS/plain/tool.sqfs\"}"
    echo "$status_code $body"
    [ "$status_code" = 200 ]
}

@test "gateway: /metrics is Prometheus text and its counters moved" {
    run curl -sf "http://127.0.0.1:$PORT/metrics"
    [ "$status" -eq 0 ]
    # Every sample line is NAME{LABELS} VALUE or NAME VALUE.
    ! grep -vE '^(# (HELP|TYPE) .*|[a-z_]+(\{[a-z_]+="[^"]*"\})? [0-9.e+-]+)$' <<<"$output" || false
    [ "$(grep -E '^shifter_gateway_pulls_total\{outcome="ready"\}' <<<"$output" | cut -d' ' -f2)" -ge 3 ]
    # The pulls that joined one held in progress, in the test of two users pulling one tag.
    [ "$(grep -E '^shifter_gateway_pulls_total\{outcome="joined"\}' <<<"$output" | cut -d' ' -f2)" -ge 2 ]
    [ "$(grep -E '^shifter_gateway_pulled_bytes_total' <<<"$output" | cut -d' ' -f2)" -gt 0 ]
    [ "$(grep -E '^shifter_gateway_lookups_total\{result="found"\}' <<<"$output" | cut -d' ' -f2)" -ge 1 ]
}

@test "gateway: killed during a pull and restarted, no record stays PULLING and no partial image remains" {
    # A registry that accepts connections and never answers keeps the pulls in PULLING.
    python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept(); held.append(c)
' >"$WORK/stall.port" &
    STALL_PID=$!
    local deadline=$((SECONDS + 30))
    until [ -s "$WORK/stall.port" ]; do
        ((SECONDS < deadline)) || { echo "the stalling registry did not start in 30 s" >&2; return 1; }
        sleep 0.1
    done
    stall=127.0.0.1:$(cat "$WORK/stall.port")
    payload=$(jq -nc '{credentials: {username: "u", password: "p"}}')
    api "$BED_USER" POST "/api/pull/bed/docker/$stall/test/stalled:1/"
    api "$BED_USER" POST "/api/pull/bed/docker/$stall/test/withcreds:1/" "" "$payload"
    wait_status "$BED_USER" "$stall/test/stalled:1" PULLING
    wait_status "$BED_USER" "$stall/test/withcreds:1" PULLING
    pid=$(cat "$WORK/gateway.pid")
    kill -KILL "$pid"
    kill "$STALL_PID"
    # The new gateway listens on the same port, and the resumed pull must find the registry gone.
    wait_exited "$pid"
    wait_exited "$STALL_PID"
    unset STALL_PID
    start_gateway "$PORT"
    # The pull with credentials cannot resume: it fails with a reason at once.
    wait_status "$BED_USER" "$stall/test/withcreds:1" FAILURE
    [[ $(jq -r .status_message <<<"$body") == *restart* || $(jq -r .status_message <<<"$body") == *stopped* ]]
    # The other is resumed, and ends (the registry is gone now).
    wait_status "$BED_USER" "$stall/test/stalled:1" FAILURE
    for image in "$WORK"/images/*.squashfs; do
        [ -f "${image%.squashfs}.meta.json" ]
    done
    [ -z "$(find "$WORK/images" -maxdepth 1 -name '.import-*' -o -maxdepth 1 -name '.gateway-import-*')" ]
}

@test "gateway: SIGTERM stops it gracefully" {
    pid=$(cat "$WORK/gateway.pid")
    kill -TERM "$pid"
    wait_exited "$pid"
    grep -q 'stopped' "$WORK/gateway.log"
    start_gateway "$PORT"
}

@test "gateway: the autoexpire timer expires an unused image by itself and keeps one in use" {
    # A gateway of its own. Images expire 1 s after their last use, but the job time limit is a
    # day: the image looked up below stays in use for the whole test, the other is never looked
    # up, so which one the timer expires does not depend on timing.
    local WORK=$BATS_FILE_TMPDIR/gw-timer PORT
    TIMER_WORK=$WORK
    mkdir -p "$WORK/images"
    chmod 755 "$WORK" "$WORK/images"

    # First with the timer off, so that both pulls finish before any run can happen.
    PORT=$(free_port)
    write_timer_config 0
    start_gateway "$PORT"
    grep -q 'autoexpire timer off' "$WORK/gateway.log"
    api "$BED_USER" POST /api/pull/bed/docker/test/busybox:latest/
    [ "$status_code" = 200 ]
    wait_listed "$BED_USER" test/busybox:latest
    unused=$(jq -r --arg tag "$REGISTRY_ANON/test/busybox:latest" '.list[] | select(.tag == $tag) | .id' <<<"$body")
    api "$BED_USER" POST /api/pull/bed/docker/test/layered:latest/
    [ "$status_code" = 200 ]
    wait_status "$BED_USER" test/layered:latest READY
    used=$(jq -r .id <<<"$body")
    [[ $unused == sha256:* && $used == sha256:* ]]
    # The lookup of one would keep the other if they were the same image.
    [ "$unused" != "$used" ]
    [ -f "$WORK/images/${unused#sha256:}.squashfs" ]
    # With 0 there is no timer at all.
    [ "$(metric 'shifter_gateway_autoexpire_runs_total{result="ok"}')" = 0 ]
    [ "$(metric 'shifter_gateway_autoexpire_runs_total{result="failed"}')" = 0 ]
    # stop_gateway gives up after 5 s; the next gateway shares the database.
    pid=$(cat "$WORK/gateway.pid")
    stop_gateway
    wait_exited "$pid"

    # Then the same state with a run every second.
    PORT=$(free_port)
    write_timer_config 1
    start_gateway "$PORT"
    grep -q 'autoexpire timer on' "$WORK/gateway.log"
    # Every run after the first second expires the unused image, so this becomes true; 60 s only
    # bounds a broken timer.
    local deadline=$((SECONDS + 60))
    until [ "$(metric shifter_gateway_autoexpired_images_total)" -ge 1 ] 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "the timer expired nothing in 60 s" >&2; cat "$WORK/gateway.log" >&2; return 1; }
        sleep 0.5
    done
    [ "$(metric 'shifter_gateway_autoexpire_runs_total{result="ok"}')" -ge 1 ]
    [ "$(metric 'shifter_gateway_autoexpire_runs_total{result="failed"}')" = 0 ]
    # Nobody called /api/autoexpire/: the gateway did it, and logged it. (A `!` command does not
    # fail a bats test, so absences are counted.)
    [ "$(grep -c 'api/autoexpire' "$WORK/gateway.log")" = 0 ]
    [ "$(grep 'image expired' "$WORK/gateway.log" | grep -cF "$REGISTRY_ANON/test/busybox:latest")" = 1 ]
    [ "$(grep 'image expired' "$WORK/gateway.log" | grep -cF "$REGISTRY_ANON/test/layered:latest")" = 0 ]
    # The unused image is EXPIRED and gone from the store.
    record_status=$(python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT status FROM images WHERE tag = ?", (sys.argv[2],)).fetchone()[0])' \
        "$WORK/state.sqlite" "$REGISTRY_ANON/test/busybox:latest")
    [ "$record_status" = EXPIRED ]
    [ ! -e "$WORK/images/${unused#sha256:}.squashfs" ]
    [ ! -e "$WORK/images/${unused#sha256:}.meta.json" ]
    api "$BED_USER" GET /api/lookup/bed/docker/test/busybox:latest/
    [ "$status_code" = 404 ]
    # The image in use is kept.
    api "$BED_USER" GET /api/lookup/bed/docker/test/layered:latest/
    [ "$status_code" = 200 ]
    [ "$(jq -r .status <<<"$body")" = READY ]
    [ -f "$WORK/images/${used#sha256:}.squashfs" ]
}
