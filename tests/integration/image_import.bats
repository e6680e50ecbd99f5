#!/usr/bin/env bats
# shifterimg pull with imageGateway=local against the bed's registries over TLS: anonymous, bearer
# token and basic authentication. Each image is loop-mounted and compared, entry by entry, with what
# `umoci unpack` makes of the same image (device nodes aside, which the importer drops).

load helpers
bats_require_minimum_version 1.5.0

SHIFTERIMG=${SHIFTERIMG:-$SHIFTER_PREFIX/bin/shifterimg}

setup_file() {
    local_import_work
    # The tree lister: one line per path with its type, mode, owner, mtime, link target, content
    # digest, xattrs and, for the second and later names of an inode, the first name.
    cat > "$WORK/tree.py" <<'PY'
import hashlib, os, stat, sys
root = sys.argv[1]
first_name = {}
lines = []
for directory, subdirectories, files in os.walk(root):
    subdirectories.sort()
    for name in sorted(subdirectories + files):
        path = os.path.join(directory, name)
        relative = os.path.relpath(path, root)
        info = os.lstat(path)
        mode = info.st_mode
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            continue
        kind = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "link", stat.S_IFIFO: "fifo",
                stat.S_IFSOCK: "socket"}.get(stat.S_IFMT(mode), "other")
        detail = ""
        if kind == "link":
            detail = os.readlink(path)
        elif kind == "file":
            with open(path, "rb") as content:
                detail = hashlib.sha256(content.read()).hexdigest()
        link = ""
        if kind != "dir":
            key = (info.st_dev, info.st_ino)
            if key in first_name:
                link = "hardlink-of=" + first_name[key]
            else:
                first_name[key] = relative
        try:
            names = sorted(os.listxattr(path, follow_symlinks=False))
        except OSError:  # a squashfs without an xattr table answers EOPNOTSUPP
            names = []
        xattrs = ",".join("%s=%s" % (key, os.getxattr(path, key, follow_symlinks=False).hex()) for key in names)
        lines.append("|".join([relative, kind, oct(stat.S_IMODE(mode)), "%d:%d" % (info.st_uid, info.st_gid),
                               str(int(info.st_mtime)), detail, xattrs, link]))
print("\n".join(lines))
PY
}

teardown() {
    if mountpoint -q "$WORK/mnt" 2>/dev/null; then umount "$WORK/mnt"; fi
}

simg() { "$SHIFTERIMG" --config "$WORK/udiRoot.conf" "$@"; }

# The image id a pull printed on its last line: "pulled REF sha256:HEX" or "present REF sha256:HEX".
pulled_id() { awk 'END { print $3 }' <<<"$1"; }

# compare_with_umoci ID OCI-TAG: loop-mounts the stored image and compares it with umoci's unpack.
compare_with_umoci() {
    local id=${1#sha256:} tag=$2
    if [ "$(id -u)" != 0 ] || [ ! -e /dev/loop-control ]; then
        skip "needs root and /dev/loop-control to loop-mount the image"
    fi
    rm -rf "$WORK/bundle-$tag"
    umoci unpack --image "$OCI_LAYOUT:$tag" "$WORK/bundle-$tag" >/dev/null
    mkdir -p "$WORK/mnt"
    mount -t squashfs -o loop,ro "$WORK/images/$id.squashfs" "$WORK/mnt"
    /usr/bin/python3 "$WORK/tree.py" "$WORK/bundle-$tag/rootfs" > "$WORK/expected-$tag"
    /usr/bin/python3 "$WORK/tree.py" "$WORK/mnt" > "$WORK/actual-$tag"
    umount "$WORK/mnt"
    [ -s "$WORK/expected-$tag" ]
    diff -u "$WORK/expected-$tag" "$WORK/actual-$tag"
}

@test "pull busybox from the anonymous registry and match umoci's tree" {
    run simg pull "$REGISTRY_ANON/test/busybox:latest"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "resolved reference=$REGISTRY_ANON/test/busybox:latest id=sha256:"* ]]
    [[ "$output" == *"stored id=sha256:"* ]]
    id=$(pulled_id "$output")
    [ -f "$WORK/images/${id#sha256:}.squashfs" ]
    [ -f "$WORK/images/${id#sha256:}.meta.json" ]
    [ "$(jq -r .digest "$WORK/images/${id#sha256:}.meta.json")" = "$id" ]
    [ "$(jq -r .source "$WORK/images/${id#sha256:}.meta.json")" = "docker:$REGISTRY_ANON/test/busybox:latest" ]
    compare_with_umoci "$id" busybox
}

@test "pull the layered image (whiteouts, opaque dir, hard links, symlinks) and match umoci's tree" {
    run simg pull "$REGISTRY_ANON/test/layered:latest"
    echo "$output"
    [ "$status" -eq 0 ]
    id=$(pulled_id "$output")
    meta=$WORK/images/${id#sha256:}.meta.json
    [ "$(jq -c .env "$meta")" = '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","FOO=bar","GREETING=hello world"]' ]
    [ "$(jq -c .entrypoint "$meta")" = '["/bin/echo","entry"]' ]
    [ "$(jq -c .cmd "$meta")" = '["hello"]' ]
    [ "$(jq -r .workdir "$meta")" = /data ]
    [ "$(jq -r '.labels["org.example.test"]' "$meta")" = layered ]
    [ "$(jq -r '.layers | length' "$meta")" = 3 ]
    compare_with_umoci "$id" layered
}

@test "pull from the bearer-token registry after login gives the same image" {
    run simg pull "$REGISTRY_TOKEN/test/layered:latest"
    echo "$output"
    [ "$status" -eq 1 ]
    [[ "$output" == *"requires authentication"* ]]
    run simg login --username "$REGISTRY_USER" --password-stdin "$REGISTRY_TOKEN" <<<"$REGISTRY_PASSWORD"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(stat -c %a "$XDG_CONFIG_HOME/shifter/auth.json")" = 600 ]
    run simg pull "$REGISTRY_TOKEN/test/layered:latest"
    echo "$output"
    [ "$status" -eq 0 ]
    token_id=$(pulled_id "$output")
    run simg lookup "$REGISTRY_ANON/test/layered:latest"
    [ "$status" -eq 0 ]
    [ "$output" = "$token_id" ]
    compare_with_umoci "$token_id" layered
}

@test "pull from the basic-auth registry after login" {
    run simg login --username "$REGISTRY_USER" --password-stdin "$REGISTRY_BASIC" <<<"$REGISTRY_PASSWORD"
    [ "$status" -eq 0 ]
    run simg pull "$REGISTRY_BASIC/test/busybox:latest"
    echo "$output"
    [ "$status" -eq 0 ]
    compare_with_umoci "$(pulled_id "$output")" busybox
}

@test "the multi-platform index yields the amd64 image" {
    run simg pull "$REGISTRY_ANON/test/multiarch:latest"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == *" platform=linux/amd64 "* ]]
    multi_id=$(pulled_id "$output")
    run simg pull "$REGISTRY_ANON/test/busybox:latest"
    [ "$status" -eq 0 ]
    # The index's amd64 entry is the busybox manifest itself.
    [ "$(pulled_id "$output")" = "$multi_id" ]
    index_digest=$(jq -r .manifestDigest "$WORK/images/${multi_id#sha256:}.meta.json")
    [ "$index_digest" != "$multi_id" ] || [ "$(jq -r .source "$WORK/images/${multi_id#sha256:}.meta.json")" != "docker:$REGISTRY_ANON/test/multiarch:latest" ]
    run simg pull --platform linux/arm64 "$REGISTRY_ANON/test/multiarch:latest"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == *" platform=linux/arm64"* ]]
    [ "$(pulled_id "$output")" != "$multi_id" ]
}

@test "importing the same digest twice converts once" {
    run simg pull "$REGISTRY_ANON/test/busybox:latest"
    [ "$status" -eq 0 ]
    id=$(pulled_id "$output")
    before=$(stat -c '%i %Y' "$WORK/images/${id#sha256:}.squashfs")
    run simg pull "$REGISTRY_ANON/test/busybox:latest"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"present id=$id"* ]]
    [[ "${lines[-1]}" == "present docker:$REGISTRY_ANON/test/busybox:latest $id" ]]
    [ "$(stat -c '%i %Y' "$WORK/images/${id#sha256:}.squashfs")" = "$before" ]
}

@test "pull shows per-layer progress with byte counts on a terminal" {
    simg rm "$REGISTRY_ANON/test/layered:latest" >/dev/null 2>&1 || true
    run script -qec "'$SHIFTERIMG' --config '$WORK/udiRoot.conf' pull '$REGISTRY_ANON/test/layered:latest'" /dev/null
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"layer 1/3 "* ]]
    [[ "$output" == *"layer 3/3 "* ]]
    [[ "$output" =~ [0-9.]+\ (B|KiB|MiB) ]]
    [[ "$output" != *"resolved reference="* ]]
}

@test "images, lookup and rm" {
    run simg pull "$REGISTRY_ANON/test/busybox:latest"
    [ "$status" -eq 0 ]
    id=$(pulled_id "$output")
    run simg images
    echo "$output"
    [ "$status" -eq 0 ]
    grep -q "^docker:$REGISTRY_ANON/test/busybox:latest  $id " <<<"$output"
    run simg lookup "$REGISTRY_ANON/test/busybox"
    [ "$status" -eq 0 ]
    [ "$output" = "$id" ]
    run simg rm "$REGISTRY_ANON/test/busybox:latest"
    echo "$output"
    [ "$status" -eq 0 ]
    [ ! -e "$WORK/images/${id#sha256:}.squashfs" ]
    [ ! -e "$WORK/images/${id#sha256:}.meta.json" ]
    # Not found is told apart from a failure by its status, 2.
    run simg lookup "$REGISTRY_ANON/test/busybox:latest"
    [ "$status" -eq 2 ]
    [[ "$output" == "shifterimg: lookup $REGISTRY_ANON/test/busybox:latest: not in the image store"* ]]
}

@test "a normal user cannot pull into the store in local mode" {
    chmod 755 "$BATS_FILE_TMPDIR" "$WORK"
    run runuser -u "$BED_USER" -- env SHIFTER_CA_BUNDLE="$CA_BUNDLE" HOME=/tmp \
        "$SHIFTERIMG" --config "$WORK/udiRoot.conf" pull "$REGISTRY_ANON/test/busybox:latest"
    echo "$output"
    [ "$status" -eq 1 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == *"Permission denied"* ]]
}
