#!/usr/bin/env bats
# The hostile-image corpus (tests/hostile/make-corpus.py), served by tests/hostile/registry.py and
# pulled with shifterimg in local mode into a store of its own. Every case ends in a correct image
# or a one-line refusal that names the reason; either way nothing is written outside the store and
# the store holds no partial file. Each path a case tries to write outside the image contains
# "hostile-escape", and the host is searched for it before and after.
#
# HOSTILE_MANY_FILES sets the size of the many-files case (default 1000000).

load helpers
bats_require_minimum_version 1.5.0

SHIFTERIMG=${SHIFTERIMG:-$SHIFTER_PREFIX/bin/shifterimg}
PORT=${HOSTILE_REGISTRY_PORT:-5011}
REG=127.0.0.1:$PORT

setup_file() {
    export WORK=$BATS_FILE_TMPDIR/hostile
    mkdir -p "$WORK/images" "$WORK/config"
    chmod 755 "$BATS_FILE_TMPDIR" "$WORK" "$WORK/images"
    # Import limits low enough for the bomb to reach in a test: it expands to 64 MiB.
    conf "$WORK/udiRoot.conf" "imageExpandedSizeLimit=16M"
    conf "$WORK/default.conf" ""
    conf "$WORK/fewentries.conf" "imageEntryLimit=100000"
    export XDG_CONFIG_HOME=$WORK/config SHIFTER_CA_BUNDLE=$CA_BUNDLE
    /usr/bin/python3 "$SHIFTER_SOURCE/tests/hostile/make-corpus.py" "$WORK/corpus" \
        --many-files "${HOSTILE_MANY_FILES:-1000000}" --bomb-mib 64
    start_test_registry "$SHIFTER_SOURCE/tests/hostile/registry.py" "$PORT" "$BED_DIR/ca/server.crt" \
        "$BED_DIR/ca/server.key" "$WORK/corpus"
}

teardown_file() {
    [ -f "$WORK/registry.pid" ] && kill "$(cat "$WORK/registry.pid")" 2>/dev/null || true
    rm -f "$IMAGE_STORE"/tags/*hostile%2Fsetuid-and-devices*
}

# conf FILE EXTRA: a local-mode site configuration for the test store, with EXTRA lines.
conf() {
    printf 'udiMount=%s\nloopMount=%s\nimagePath=%s\nimageGateway=local\n%s\n' \
        "$WORK/udiMount" "$WORK/loopMount" "$WORK/images" "$2" >"$1"
    chmod 644 "$1"
}

store_state() { (cd "$WORK/images" && find . -mindepth 1 -printf '%p %s %T@\n' | sort); }

# no_escape: nothing named after a corpus escape exists where an escape would land.
no_escape() {
    local found
    found=$(find / /tmp /var/tmp /etc /root "$WORK" -xdev -maxdepth 4 -name '*hostile-escape*' \
        -not -path "$WORK/corpus/*" 2>/dev/null || true)
    [ -z "$found" ] || { echo "escaped: $found" >&2; return 1; }
}

# pull CASE [CONFIG]: pulls the case; sets $status, $output, $stderr, $BEFORE, $ELAPSED.
pull() {
    REF=$REG/hostile/$1:latest
    BEFORE=$(store_state)
    local start=$SECONDS
    run --separate-stderr "$SHIFTERIMG" --config "${2:-$WORK/udiRoot.conf}" pull "$REF"
    ELAPSED=$((SECONDS - start))
    echo "status=$status elapsed=${ELAPSED}s"
    echo "stderr: $stderr"
}

# refused CASE PATTERN [CONFIG]: the pull fails with one line naming the image and matching PATTERN;
# the store is as it was, with no staging directory.
refused() {
    pull "$1" "${3:-}"
    [ "$status" -eq 1 ]
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == "shifterimg: pull $REF: "* ]]
    [[ "$stderr" =~ $2 ]]
    [ "$(store_state)" = "$BEFORE" ]
    [ -z "$(find "$WORK/images" -maxdepth 1 -name '.import-*')" ]
    no_escape
    printf '%s\trefused\t%ss\t%s\n' "$1" "$ELAPSED" "${stderr#shifterimg: pull $REF: }" >>"$WORK/outcomes"
}

# accepted CASE [CONFIG]: the pull succeeds and adds exactly the image, its record and its tag;
# sets $IMAGE (the squashfs file) and $ID.
accepted() {
    pull "$1" "${2:-}"
    [ "$status" -eq 0 ]
    ID=$(tail -n 1 <<<"$output" | awk '{print $3}')
    [[ $ID == sha256:* ]]
    IMAGE=$WORK/images/${ID#sha256:}.squashfs
    local added
    added=$(comm -13 <(cut -d' ' -f1 <<<"$BEFORE") <(store_state | cut -d' ' -f1) | tr '\n' ' ')
    echo "added: $added"
    [ "$added" = "./${ID#sha256:}.meta.json ./${ID#sha256:}.squashfs ./tags ./tags/docker%3A127.0.0.1%3A$PORT%2Fhostile%2F$1%3Alatest " ] ||
        [ "$added" = "./${ID#sha256:}.meta.json ./${ID#sha256:}.squashfs ./tags/docker%3A127.0.0.1%3A$PORT%2Fhostile%2F$1%3Alatest " ]
    [ -z "$(find "$WORK/images" -maxdepth 1 -name '.import-*')" ]
    no_escape
    printf '%s\timage\t%ss\t%s\n' "$1" "$ELAPSED" "$ID" >>"$WORK/outcomes"
}

# entry IMAGE PATH: the listing line of PATH in the image ("TYPE+MODE UID/GID ...").
entry() { unsquashfs -lln -d /sq "$1" 2>/dev/null | awk -v p="/sq/$2" '$NF == p || $0 ~ " " p " -> " {print}'; }

@test "hostile: nothing named after an escape exists on the host before the corpus runs" {
    run find / -xdev -name '*hostile-escape*' -not -path "$WORK/corpus/*"
    [ -z "$output" ]
}

@test "hostile: the control image pulls and reads back" {
    accepted good
    [ "$(unsquashfs -cat "$IMAGE" etc/hello | head -n 1)" = hello ]
}

@test "hostile: ../ traversal is refused" {
    refused traversal 'entry "(\.\./)+tmp/hostile-escape-traversal": path contains "\.\."'
    refused traversal-nested 'entry "a/b/\.\./\.\./\.\./hostile-escape-nested": path contains "\.\."'
}

@test "hostile: an absolute path is refused" {
    refused absolute 'entry "/tmp/hostile-escape-absolute": path is absolute'
}

@test "hostile: a symlink out of the root, then a file written through it, is refused" {
    refused symlink-write-through 'entry "escape/hostile-escape-symlink" lies beneath "escape", which is a symbolic link in the same layer'
    refused symlink-relative-write-through 'lies beneath "up", which is a symbolic link in the same layer'
}

@test "hostile: an upper layer's directory replaces a lower layer's symlink out of the root" {
    accepted symlink-cross-layer
    [[ "$(entry "$IMAGE" escape)" == d* ]]
    [ "$(unsquashfs -cat "$IMAGE" escape/hostile-escape-crosslayer)" = inside ]
}

@test "hostile: symlinks that point outside, or in a loop, are stored as links" {
    accepted symlink-outside
    [[ "$(entry "$IMAGE" etc/shadow-link)" == l*" -> ../../../../etc/shadow" ]]
    [[ "$(entry "$IMAGE" abs-link)" == l*" -> /etc/shadow" ]]
    accepted symlink-loop
    [[ "$(entry "$IMAGE" a)" == l*" -> b" ]]
}

@test "hostile: hard links to outside paths, through symlinks, or in a cycle are refused" {
    refused hardlink-absolute 'hard link target of "link": "/etc/passwd": path is absolute'
    refused hardlink-relative 'hard link target of "link": "\.\./\.\./\.\./etc/passwd": path contains "\.\."'
    refused hardlink-through-symlink 'points to "hostetc/passwd", which no layer at or below it contains'
    refused hardlink-cycle 'which no layer at or below it contains'
}

@test "hostile: whiteouts of ../x, .. and . are refused" {
    refused whiteout-parent 'entry "\.\./\.wh\.hostile-escape-whiteout": path contains "\.\."'
    refused whiteout-dotdot 'whiteout "etc/\.wh\.\.\." names no valid entry'
    refused whiteout-dot 'whiteout "\.wh\.\." names no valid entry'
}

@test "hostile: duplicate entries: the later one wins, as in tar extraction" {
    accepted duplicate-entries
    [ "$(unsquashfs -cat "$IMAGE" dup)" = second ]
    [[ "$(entry "$IMAGE" swap)" == -* ]]
    [ "$(unsquashfs -cat "$IMAGE" swap)" = "now a file" ]
    [ -z "$(entry "$IMAGE" swap/child)" ]
}

@test "hostile: paths over 4096 bytes, deep nesting and names over 255 bytes are refused" {
    refused long-path 'path is longer than 4096 bytes'
    # 100,000 nested directories in one pax header: refused at once (it once took 10 GB and crashed).
    refused deep-nesting 'path is longer than 4096 bytes'
    [ "$ELAPSED" -lt 30 ]
    refused long-component 'a path component is longer than 255 bytes'
}

@test "hostile: names with newlines are kept, and quoted in messages so they add no line" {
    accepted newline-name
    [ "$(unsquashfs -cat "$IMAGE" $'line1\nline2')" = nl ]
    [ "$(unsquashfs -cat "$IMAGE" $'dir\nname/file')" = f ]
    refused newline-traversal 'entry "a\\x0ab/\.\./\.\./hostile-escape-newline\\x0aINJECTED LINE": path contains'
}

@test "hostile: an entry that would replace the root is refused" {
    refused root-replaced 'would replace the image root with a non-directory'
}

@test "hostile: a layer that expands 1000-fold stops at the configured limit" {
    refused bomb 'the decompressed layers of the image exceed 16777216 bytes, the import limit \(imageExpandedSizeLimit\)'
    [ "$ELAPSED" -lt 30 ]
    # Hidden by a whiteout above it, its data would only be skipped: it is stopped all the same.
    refused bomb-hidden 'exceed 16777216 bytes, the import limit'
}

@test "hostile: a million empty files become an image; over the entry limit they are refused" {
    local count=${HOSTILE_MANY_FILES:-1000000}
    refused many-files "the image has more than 100000 entries, the import limit \\(imageEntryLimit\\)" "$WORK/fewentries.conf"
    accepted many-files "$WORK/default.conf"
    # The files, one directory per thousand, and the root.
    inodes=$(unsquashfs -s "$IMAGE" | awk '/^Number of inodes/ {print $4}')
    echo "inodes=$inodes"
    [ "$inodes" -eq $((count + (count + 999) / 1000 + 1)) ]
}

@test "hostile: a setuid-root binary is kept but grants no root; device nodes are dropped" {
    accepted setuid-and-devices
    [[ "$(entry "$IMAGE" bin/busybox)" == "-rwsr-xr-x 0/0 "* ]]
    [ -z "$(entry "$IMAGE" dev/sda)" ]
    [ -z "$(entry "$IMAGE" dev/mem)" ]
    [ -z "$(entry "$IMAGE" dev/kmsg)" ]
    [[ "$(entry "$IMAGE" run/fifo)" == p* ]]
    # Run it: the image goes into the bed's store for the runtime, and out again.
    printf 'udiMount=%s\nloopMount=%s\nimagePath=%s\nimageGateway=local\n' "$WORK/udiMount" "$WORK/loopMount" "$IMAGE_STORE" \
        >"$WORK/bedstore.conf"
    chmod 644 "$WORK/bedstore.conf"
    run "$SHIFTERIMG" --config "$WORK/bedstore.conf" pull "$REG/hostile/setuid-and-devices:latest"
    [ "$status" -eq 0 ]
    uid=$(id -u "$BED_USER")
    # The setuid-root busybox, called as itself and through its hard link /bin/id.
    run shifter_as "$BED_USER" --image="id:$ID" /bin/busybox sh -c 'busybox id -u; /bin/id -u; busybox id -g'
    rm -f "$IMAGE_STORE/${ID#sha256:}".* "$IMAGE_STORE"/tags/*hostile%2Fsetuid-and-devices*
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "$uid" ]
    [ "${lines[1]}" = "$uid" ]
    [ "${lines[2]}" = "$(id -g "$BED_USER")" ]
}

@test "hostile: manifests whose media type is not an image manifest are refused" {
    refused mediatype-config 'has media type "application/vnd\.oci\.image\.config\.v1\+json", which is not an image manifest or index'
    refused mediatype-html 'has media type "text/html"'
    refused mediatype-schema1 'is a schema 1 manifest, which is not supported'
    # Without a media type the fields decide, as the OCI specification allows; a zstd layer
    # labelled gzip is read by its content.
    accepted mediatype-absent
    accepted mediatype-layer-zstd-label
}

@test "hostile: digests and sizes that do not match the content are refused" {
    refused digest-mismatch-layer 'blob sha256:[0-9a-f]{64} has content with digest sha256:[0-9a-f]{64}'
    refused digest-mismatch-config 'config blob sha256:[0-9a-f]{64} has content with digest'
    refused size-understated 'more than the 100 bytes the manifest declares'
    refused size-overstated 'is [0-9]+ bytes, but the manifest says 1048576'
    refused not-sha256 'digest "md5:0+" is not a sha256 digest'
    refused digest-traversal 'digest "sha256:\.\./\.\./\.\./\.\./hostile-escape" is not a sha256 digest'
    # A pinned manifest digest that the registry's answer does not match.
    wrong=sha256:$(printf 'x' | sha256sum | cut -d' ' -f1)
    BEFORE=$(store_state)
    run --separate-stderr "$SHIFTERIMG" --config "$WORK/udiRoot.conf" pull "$REG/hostile/good@$wrong"
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"manifest $wrong of hostile/good has content with digest sha256:"* ]]
    [ "$(store_state)" = "$BEFORE" ]
}

@test "hostile: through the gateway, the same cases end READY or FAILURE with the reason, nothing partial" {
    local gw=$WORK/gw port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$gw/images"
    chmod 755 "$gw" "$gw/images"
    cat >"$gw/imagegw.conf" <<CONF
{
    "listen": "127.0.0.1:$port",
    "database": "$gw/state.sqlite",
    "workers": 2,
    "systems": {"bed": {"imagePath": "$gw/images"}},
    "registries": {"hostile": {"url": "https://$REG", "caBundle": "$CA_BUNDLE", "auth": "anonymous"}},
    "defaultRegistry": "$REG"
}
CONF
    "${SHIFTER_IMAGEGW:-$SHIFTER_PREFIX/bin/shifter-imagegw}" --config "$gw/imagegw.conf" >"$gw/gateway.log" 2>&1 &
    local pid=$!
    for _ in $(seq 150); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
    local case expected credential body status message failures=0
    while read -r case expected; do
        credential=$(runuser -u "$BED_USER" -- munge -n)
        curl -s -X POST -H "authentication: $credential" "http://127.0.0.1:$port/api/pull/bed/docker/$REG/hostile/$case:latest/" >/dev/null
        for _ in $(seq 300); do
            credential=$(runuser -u "$BED_USER" -- munge -n)
            body=$(curl -s -H "authentication: $credential" "http://127.0.0.1:$port/api/lookup/bed/docker/$REG/hostile/$case:latest/")
            status=$(jq -r .status <<<"$body")
            [ "$status" = READY ] || [ "$status" = FAILURE ] && break
            sleep 0.2
        done
        message=$(jq -r .status_message <<<"$body")
        echo "gateway: $case: $status: $message"
        if [ "$expected" = READY ]; then
            [ "$status" = READY ] || failures=$((failures + 1))
        elif [ "$status" != FAILURE ] || [[ "$message" != *"$expected"* ]]; then
            failures=$((failures + 1))
        fi
    done <<'CASES'
good READY
traversal path contains ".."
symlink-write-through which is a symbolic link in the same layer
hardlink-absolute path is absolute
whiteout-parent path contains ".."
deep-nesting path is longer than 4096 bytes
newline-traversal \x0aINJECTED LINE
mediatype-config which is not an image manifest or index
digest-mismatch-layer has content with digest
setuid-and-devices READY
CASES
    kill -TERM "$pid"
    wait "$pid" || true
    [ "$failures" -eq 0 ]
    [ -z "$(find "$gw/images" -maxdepth 1 -name '.import-*' -o -maxdepth 1 -name '.gateway-import-*')" ]
    for image in "$gw"/images/*.squashfs; do [ -f "${image%.squashfs}.meta.json" ]; done
    [ "$(ls "$gw"/images/*.squashfs | wc -l)" -eq 2 ]
    no_escape
}

@test "hostile: nothing named after an escape exists anywhere on the host afterwards" {
    run find / -xdev -name '*hostile-escape*' -not -path "$WORK/corpus/*"
    echo "$output"
    [ -z "$output" ]
    [ -z "$(find "$WORK/images" -maxdepth 1 -name '.import-*')" ]
    # Every image in the store is complete: a record for each squashfs file and the other way round.
    for image in "$WORK"/images/*.squashfs; do [ -f "${image%.squashfs}.meta.json" ]; done
    for record in "$WORK"/images/*.meta.json; do [ -f "${record%.meta.json}.squashfs" ]; done
    cat "$WORK/outcomes"
    echo "cases: $(wc -l <"$WORK/outcomes") images: $(grep -c '	image	' "$WORK/outcomes") refused: $(grep -c '	refused	' "$WORK/outcomes")"
    if [ -n "${HOSTILE_OUTCOMES:-}" ]; then cp "$WORK/outcomes" "$HOSTILE_OUTCOMES"; fi
}
