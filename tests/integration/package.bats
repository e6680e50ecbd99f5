#!/usr/bin/env bats
# The Debian package installs into a fresh Debian root (debootstrap, kept between runs) and its
# commands run there.

load helpers

DEB_ROOT_CACHE=${DEB_ROOT_CACHE:-/var/tmp/shifter-debroot.tar}

# The mirror the machine's apt uses, so the fresh root comes from the same place.
debian_mirror() {
    sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1
    grep -hoE '^deb +[^ ]+' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1
}

setup() {
    ROOT=$(mktemp -d /var/tmp/shifter-debroot.XXXXXX)
}

teardown() {
    for m in proc dev; do umount -l "$ROOT/$m" 2>/dev/null || true; done
    rm -rf "$ROOT"
}

@test "make deb builds a package that installs into a fresh Debian root, where shifter runs" {
    command -v debootstrap >/dev/null || skip "debootstrap is not installed"
    run make -s -C "$SHIFTER_SOURCE" deb
    echo "$output"
    [ "$status" -eq 0 ]
    deb=$SHIFTER_SOURCE/$(tail -1 <<<"$output")
    [ -f "$deb" ]
    # The package's shifter is setuid root, and it carries the plugin, the library and the unit.
    contents=$(dpkg-deb -c "$deb")
    grep -qE '^-rwsr-xr-x root/root .* \./usr/bin/shifter$' <<<"$contents"
    grep -q './usr/lib/shifter/shifter_spank.so$' <<<"$contents"
    grep -q './usr/lib/shifter/libshifter.so$' <<<"$contents"
    grep -q './usr/lib/systemd/system/shifter-imagegw.service$' <<<"$contents"
    grep -q './usr/share/man/man1/shifter.1.gz$' <<<"$contents"
    grep -qE '^-rwxr-xr-x root/root .* \./usr/sbin/shifter-admin$' <<<"$contents"
    grep -q './usr/share/man/man8/shifter-admin.8.gz$' <<<"$contents"
    if [ ! -s "$DEB_ROOT_CACHE" ]; then
        mirror=$(debian_mirror | head -1)
        [ -n "$mirror" ] || skip "no Debian mirror configured for apt"
        debootstrap --variant=minbase bookworm "$ROOT" "$mirror" >/dev/null 2>&1 \
            || skip "debootstrap could not reach the Debian mirror"
        tar -C "$ROOT" -cf "$DEB_ROOT_CACHE.tmp" . && mv "$DEB_ROOT_CACHE.tmp" "$DEB_ROOT_CACHE"
    else
        tar -C "$ROOT" -xf "$DEB_ROOT_CACHE"
    fi
    cp "$deb" "$ROOT/tmp/shifter.deb"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    cp -r /etc/apt/sources.list.d/. "$ROOT/etc/apt/sources.list.d/" 2>/dev/null || true
    mount -t proc proc "$ROOT/proc"
    run chroot "$ROOT" sh -c 'apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/shifter.deb >/dev/null 2>&1; dpkg -s shifter | grep -E "^Status"; stat -c "%U %a" /usr/bin/shifter; shifter --version; shifterimg --version; shifter-imagegw --version; shifter-admin --version'
    echo "$output"
    [ "$status" -eq 0 ]
    grep -qx "Status: install ok installed" <<<"$output"
    grep -qx "root 4755" <<<"$output"
    grep -q "^shifter 0\." <<<"$output"
}
