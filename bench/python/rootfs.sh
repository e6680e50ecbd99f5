# The Debian tree with python3-numpy and python3-scipy that bench/python and bench/scale run
# Python from (sourced, after bench/common.sh; needs ROOTFS, BENCH_DIR, MIRROR, SUITE and log).
# The Debian tree: the one bench/import builds (debootstrap minbase + python3-numpy + python3-scipy),
# made here the same way when it is missing; without a reachable mirror, from this machine's own
# Debian packages instead.
build_rootfs() {
    [ -f "$ROOTFS/.complete" ] && return 0
    log "debootstrap $SUITE with python3-numpy and python3-scipy (once)"
    rm -rf "$ROOTFS"; mkdir -p "$BENCH_DIR"
    if debootstrap --variant=minbase --include=python3-numpy,python3-scipy "$SUITE" "$ROOTFS" "$MIRROR" \
        > "$BENCH_DIR/debootstrap.log" 2>&1; then
        rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    else
        log "debootstrap failed (see $BENCH_DIR/debootstrap.log); building the tree from this machine's packages"
        rootfs_from_host
    fi
    touch "$ROOTFS/.complete"
}

# rootfs_from_host: the files of the host's python3, python3-numpy and python3-scipy packages and
# of everything they depend on, in a merged-/usr tree, with the byte code compiled.
rootfs_from_host() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-numpy python3-scipy >/dev/null
    rm -rf "$ROOTFS"; mkdir -p "$ROOTFS"/usr/{bin,sbin,lib,lib64} "$ROOTFS"/{etc,tmp,proc,dev}
    local d
    for d in bin sbin lib lib64; do ln -s "usr/$d" "$ROOTFS/$d"; done
    chmod 1777 "$ROOTFS/tmp"
    apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances python3 python3-numpy python3-scipy | grep -v '^ ' | sed 's/:any$//' | sort -u |
        while read -r package; do dpkg -L "$package" 2>/dev/null || true; done | sort -u |
        while read -r path; do
            if [ -f "$path" ] || [ -L "$path" ]; then cp -a --parents "$path" "$ROOTFS" 2>/dev/null || true; fi
        done
    # libblas.so.3 and liblapack.so.3 are links made by update-alternatives, not package files.
    find /usr/lib/x86_64-linux-gnu /usr/bin -maxdepth 1 -lname '/etc/alternatives/*' | while read -r link; do
        [ -e "$link" ] || continue
        cp -a --parents "$link" "/etc/alternatives/$(basename "$(readlink "$link")")" "$ROOTFS"
    done
    # cp --parents made the directories 0700: give them the host's modes.
    find "$ROOTFS" -mindepth 1 -type d | while read -r dir; do
        if [ -d "${dir#"$ROOTFS"}" ]; then chmod --reference="${dir#"$ROOTFS"}" "$dir"; else chmod 755 "$dir"; fi
    done
    chroot "$ROOTFS" /usr/bin/python3 -m compileall -q /usr/lib/python3 /usr/lib/python3.11 >/dev/null 2>&1 || true
}

