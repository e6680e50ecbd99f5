#!/usr/bin/env bats
# The Debian package installs into a fresh Debian root (debootstrap, kept between runs) and its
# commands run there. The RPM holds the .deb's files with the .deb's modes and postinst, and installs
# into a scratch rpm database.

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
    # It asks for a glibc as new as the newest symbol version the binaries need.
    local glibc
    glibc=$(cd "$SHIFTER_SOURCE/build" && objdump -p shifter shifterimg shifter-imagegw shifter-admin libshifter.so shifter_spank.so |
        sed -n 's/.*[[:space:]]GLIBC_\([0-9][0-9.]*\)$/\1/p' | sort -Vu | tail -1)
    [[ "$(dpkg-deb -f "$deb" Depends)" == "libc6 (>= $glibc), "* ]]
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

# deb_regular_files DEB, rpm_regular_files RPM: "MODE OWNER/GROUP PATH" of each regular file, sorted.
deb_regular_files() { dpkg-deb -c "$1" | awk '$1 ~ /^-/ { sub(/^\./, "", $6); print $1, $2, $6 }' | sort; }
rpm_regular_files() {
    rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]' "$1" \
        | awk '$1 ~ /^-/ { print $1, $2 "/" $3, $4 }' | sort
}

@test "make rpm builds a package with the deb's files, modes and scripts" {
    command -v rpmbuild >/dev/null || skip "rpmbuild is not installed (Debian's rpm package; make deps)"
    run make -s -C "$SHIFTER_SOURCE" rpm
    echo "$output"
    [ "$status" -eq 0 ]
    rpm=$SHIFTER_SOURCE/$(tail -1 <<<"$output")
    [[ "$rpm" == */build/shifter-*-1.$(uname -m).rpm ]]
    [ -f "$rpm" ]
    run make -s -C "$SHIFTER_SOURCE" deb
    echo "$output"
    [ "$status" -eq 0 ]
    deb=$SHIFTER_SOURCE/$(tail -1 <<<"$output")
    [ -f "$deb" ]
    # The .deb's name, version and summary.
    [ "$(rpm -qp --qf '%{NAME} %{VERSION}-%{RELEASE}' "$rpm")" = "shifter $(dpkg-deb -f "$deb" Version)-1" ]
    [ "$(rpm -qp --qf '%{SUMMARY}' "$rpm")" = "$(dpkg-deb -f "$deb" Description | head -1)" ]
    # shifter is setuid root; the node tool, plugin, library, unit and man pages are where the
    # guide says.
    files=$(rpm_regular_files "$rpm")
    echo "$files"
    grep -qx -- '-rwsr-xr-x root/root /usr/bin/shifter' <<<"$files"
    grep -qx -- '-rwxr-xr-x root/root /usr/sbin/shifter-admin' <<<"$files"
    grep -qx -- '-rwxr-xr-x root/root /usr/lib/shifter/shifter_spank.so' <<<"$files"
    grep -qx -- '-rwxr-xr-x root/root /usr/lib/shifter/libshifter.so' <<<"$files"
    grep -qx -- '-rw-r--r-- root/root /usr/lib/systemd/system/shifter-imagegw.service' <<<"$files"
    grep -qx -- '-rw-r--r-- root/root /usr/share/man/man1/shifter.1.gz' <<<"$files"
    grep -qx -- '-rw-r--r-- root/root /usr/share/man/man8/shifter-admin.8.gz' <<<"$files"
    # Every regular file of the .deb with the same mode and owner, and no other; and the same bytes.
    diff <(deb_regular_files "$deb") <(echo "$files")
    dpkg-deb -x "$deb" "$ROOT/deb"
    diff <(cd "$ROOT/deb" && find . -type f -printf '%P\n' | sort | xargs sha256sum) \
        <(rpm -qp --qf '[%{FILEMODES:perms} %{FILEDIGESTS}  %{FILENAMES}\n]' "$rpm" \
            | awk '$1 ~ /^-/ { print $2 "  " substr($3, 2) }' | sort -k2)
    # The .deb's postinst, line for line, in the RPM's %post.
    post=$(rpm -qp --scripts "$rpm" | awk '/^postinstall scriptlet/ { p = 1; next } / scriptlet \(using / { p = 0 } p')
    echo "$post"
    grep -qx 'chmod 4755 /usr/bin/shifter' <<<"$post"
    while IFS= read -r line; do
        grep -qxF -- "$line" <<<"$post"
    done < <(dpkg-deb -I "$deb" postinst | grep -vE '^(#|set -e$|$)')
    # The libraries by soname, which RHEL and SLES both provide; nothing Debian's builds alone define
    # and nothing of the package's own.
    requires=$(rpm -qp --requires "$rpm")
    echo "$requires"
    for dep in 'libcurl.so.4()(64bit)' 'libarchive.so.13()(64bit)' 'libisal.so.2()(64bit)' 'libsquashfs.so.1()(64bit)' \
        'libmunge.so.2()(64bit)' 'libsqlite3.so.0()(64bit)' 'libcrypto.so.3()(64bit)' \
        'libstdc++.so.6()(64bit)' xfsprogs; do
        grep -qxF "$dep" <<<"$requires"
    done
    grep -qE '^glibc >= 2\.[0-9]+$' <<<"$requires"
    [ -z "$(grep -E 'CURL_OPENSSL|libshifter|GLIBC_' <<<"$requires")" ]
    # Installed into a scratch database (no RHEL libraries there, hence --nodeps), shifter keeps
    # its mode and, with this host's libraries, runs.
    rpmroot=$ROOT/rpm
    rpm --root "$rpmroot" --initdb
    rpm --root "$rpmroot" -i --nodeps --noscripts "$rpm"
    rpm --root "$rpmroot" -q shifter
    rpm --root "$rpmroot" -V --nodeps shifter
    [ "$(stat -c '%U %G %a' "$rpmroot/usr/bin/shifter")" = "root root 4755" ]
    run "$rpmroot/usr/bin/shifter" --version
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "shifter $(dpkg-deb -f "$deb" Version)" ]
}

@test "ENTRY_MODE=userns installs and packages shifter without the setuid bit; other values are refused" {
    command -v rpmbuild >/dev/null || skip "rpmbuild is not installed (Debian's rpm package; make deps)"
    # make install (a dry run, which builds nothing): setuid root by default, 0755 for userns.
    run env -u ENTRY_MODE make -n -s -C "$SHIFTER_SOURCE" install DESTDIR="$ROOT/install"
    [ "$status" -eq 0 ]
    grep -qE '^install -m 4755 -o root -g root build/shifter .*/usr/bin/shifter$' <<<"$output"
    run make -n -s -C "$SHIFTER_SOURCE" install DESTDIR="$ROOT/install" ENTRY_MODE=userns
    [ "$status" -eq 0 ]
    grep -qE '^install -m 0755 build/shifter .*/usr/bin/shifter$' <<<"$output"
    [ -z "$(grep -E '4755|-o root' <<<"$output")" ]
    run make -n -s -C "$SHIFTER_SOURCE" install DESTDIR="$ROOT/install" ENTRY_MODE=bogus
    echo "$output"
    [ "$status" -ne 0 ]
    [[ "$output" == *"ENTRY_MODE must be setuid or userns, not 'bogus'"* ]]
    # The packaging scripts refuse any other value, in one line, before building anything.
    for script in build-deb build-rpm; do
        run env ENTRY_MODE=bogus "$SHIFTER_SOURCE/packaging/$script"
        echo "$output"
        [ "$status" -eq 2 ]
        [ "${#lines[@]}" -eq 1 ]
        [ "$output" = "$script: ENTRY_MODE must be setuid or userns, not 'bogus'" ]
        run env PACKAGE_XZ_LEVEL=fast "$SHIFTER_SOURCE/packaging/$script"
        [ "$status" -eq 2 ]
        [ "$output" = "$script: PACKAGE_XZ_LEVEL must be 0 to 9, not 'fast'" ]
    done
    # Both packages, from the binaries already built (the scripts compile nothing). They are moved
    # out of build/, where they would pass for the default, setuid, packages.
    run env ENTRY_MODE=userns "$SHIFTER_SOURCE/packaging/build-deb"
    echo "$output"
    [ "$status" -eq 0 ]
    deb=$ROOT/$(basename "$(tail -1 <<<"$output")")
    mv "$SHIFTER_SOURCE/$(tail -1 <<<"$output")" "$deb"
    run env ENTRY_MODE=userns "$SHIFTER_SOURCE/packaging/build-rpm"
    echo "$output"
    [ "$status" -eq 0 ]
    rpm=$ROOT/$(basename "$(tail -1 <<<"$output")")
    mv "$SHIFTER_SOURCE/$(tail -1 <<<"$output")" "$rpm"
    # shifter is an ordinary program in both, and nothing makes it setuid on install or claims so.
    contents=$(dpkg-deb -c "$deb")
    grep -qE '^-rwxr-xr-x root/root .* \./usr/bin/shifter$' <<<"$contents"
    files=$(rpm -qlvp "$rpm")
    echo "$files"
    grep -qE '^-rwxr-xr-x +1 root +root .* /usr/bin/shifter$' <<<"$files"
    dpkg-deb -e "$deb" "$ROOT/control"
    [ -z "$(grep -r 'chmod 4755' "$ROOT/control")" ]
    [ -z "$(rpm -qp --scripts "$rpm" | grep 'chmod 4755')" ]
    [ -z "$(dpkg-deb -f "$deb" Description | grep -i setuid)" ]
    [ -z "$(rpm -qp --qf '%{DESCRIPTION}' "$rpm" | grep -i setuid)" ]
    dpkg-deb -f "$deb" Description | tr -s ' \n' ' ' \
        | grep -q 'enters it through a user namespace the prolog prepared, without privilege\.'
    diff <(dpkg-deb -f "$deb" Description | tail -n +2 | sed 's/^ //') <(rpm -qp --qf '%{DESCRIPTION}\n' "$rpm")
    # Otherwise the same files, modes and owners in both.
    diff <(deb_regular_files "$deb") <(rpm_regular_files "$rpm")
}
