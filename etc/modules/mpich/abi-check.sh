#!/bin/sh
# Root hook of the mpich module (module_mpich_roothook): refuses an image whose MPI does not have
# the site MPICH's ABI, before the job starts, with one line that says why.
#
#   abi-check.sh ROOT
#
# ROOT is the container's root on this node, with the image and every mount in place. The site's
# MPICH (ABI 12: libmpi.so.12 / libmpich.so.12, the MPICH ABI shared by MPICH >= 3.1, Intel MPI,
# Cray MPICH and MVAPICH2) replaces the image's MPI through LD_LIBRARY_PATH, which only works when
# the image was built against the same ABI. The image's library directories are searched: the
# standard ones and those its /etc/ld.so.conf names.
#
# - an MPI of ABI 12 (libmpich.so.12, or libmpi.so.12 that is not Open MPI's) -> accepted;
# - an MPI library of another ABI and none of ABI 12 (libmpi.so.40, libmpich.so.10, Open MPI
#   1.10's libmpi.so.12 next to libopen-pal) -> refused, status 1, the reason on the last line;
# - no MPI library at all -> accepted: nothing in the image can use the wrong one.
#
# The hook runs as root on an image the user chose. It reads only under ROOT: every symbolic link
# in the image is resolved by hand, an absolute one relative to ROOT, and ".." never leaves ROOT,
# so no link leads out of the container. It reads no file but the image's ld.so.conf files (only
# those that lie in /etc, which no user volume can reach) and writes nothing.
set -u
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
SITE_ABI=12
NL='
'

fail() {
    printf 'mpich module: %s\n' "$*" >&2
    exit 1
}

ROOT=${1:-}
case $ROOT in
    /*) ;;
    *) fail "usage: abi-check.sh ROOT (an absolute path)" ;;
esac
while [ "${ROOT%/}" != "$ROOT" ]; do ROOT=${ROOT%/}; done
[ -n "$ROOT" ] && [ -d "$ROOT" ] && [ ! -L "$ROOT" ] || fail "the container root \"$1\" is not a directory"

# resolve PATH: prints the host path of the container path PATH, each component's links resolved
# inside ROOT. Fails when a component is missing or after 40 links.
resolve() {
    _rest=$1 _done= _links=0
    while :; do
        while [ "${_rest#/}" != "$_rest" ]; do _rest=${_rest#/}; done
        [ -n "$_rest" ] || break
        _part=${_rest%%/*}
        if [ "$_part" = "$_rest" ]; then _rest=; else _rest=${_rest#*/}; fi
        case $_part in
            .) continue ;;
            ..) _done=${_done%/*}; continue ;;
        esac
        if [ -L "$ROOT$_done/$_part" ]; then
            _links=$((_links + 1))
            [ "$_links" -le 40 ] || return 1
            _target=$(readlink -- "$ROOT$_done/$_part" && echo .) || return 1
            _target=${_target%?.}
            [ -n "$_target" ] || return 1
            case $_target in /*) _done= ;; esac
            _rest=$_target/$_rest
        elif [ -e "$ROOT$_done/$_part" ]; then
            _done=$_done/$_part
        else
            return 1
        fi
    done
    printf '%s\n' "$ROOT$_done"
}

# The directories to search, resolved and without repeats, one per line.
DIRS=
add_dir() {
    _dir=$(resolve "$1") || return 0
    [ -d "$_dir" ] || return 0
    case "$NL$DIRS$NL" in *"$NL$_dir$NL"*) return 0 ;; esac
    DIRS=$DIRS${DIRS:+$NL}$_dir
}

# read_conf PATH DEPTH: adds the directories an ld.so.conf file names, following its includes.
read_conf() {
    local file lines line depth pattern pdir conf entry save_ifs
    [ "$2" -le 4 ] || return 0
    file=$(resolve "$1") || return 0
    case $file in "$ROOT"/etc/*) ;; *) return 0 ;; esac
    [ -f "$file" ] || return 0
    lines=$(sed -e 's/#.*//' -- "$file" 2>/dev/null) || return 0
    depth=$(($2 + 1))
    set -f
    save_ifs=$IFS
    IFS=$NL
    # shellcheck disable=SC2086
    set -- $lines
    IFS=$save_ifs
    set +f
    for line in "$@"; do
        set -f
        # shellcheck disable=SC2086
        set -- $line
        set +f
        [ $# -gt 0 ] || continue
        case $1 in
            include)
                shift
                for pattern in "$@"; do
                    case $pattern in /*) ;; *) pattern=/etc/$pattern ;; esac
                    pdir=$(resolve "${pattern%/*}") || continue
                    case $pdir in "$ROOT"/etc|"$ROOT"/etc/*) ;; *) continue ;; esac
                    for conf in "$pdir"/${pattern##*/}; do
                        [ -L "$conf" ] || [ -e "$conf" ] || continue
                        read_conf "${conf#"$ROOT"}" "$depth"
                    done
                done ;;
            hwcap) ;;
            *) for entry in "$@"; do case $entry in /*) add_dir "${entry%%=*}" ;; esac; done ;;
        esac
    done
}

for dir in /lib /lib64 /usr/lib /usr/lib64 /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu \
    /lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/local/lib /usr/local/lib64; do
    add_dir "$dir"
done
read_conf /etc/ld.so.conf 0

# Look at the MPI libraries' sonames in each directory, by name only (a link counts when it
# resolves, inside ROOT, to a file).
compatible= other=
save_ifs=$IFS
IFS=$NL
for dir in $DIRS; do
    IFS=$save_ifs
    openmpi=
    for f in "$dir"/libopen-pal.so.* "$dir"/libopen-rte.so.*; do
        if [ -L "$f" ] || [ -e "$f" ]; then openmpi=1; break; fi
    done
    for f in "$dir"/libmpi.so.* "$dir"/libmpich.so.*; do
        [ -L "$f" ] || [ -e "$f" ] || continue
        name=${f##*/}
        major=${name#*.so.}
        major=${major%%.*}
        # Only the soname (lib*.so.MAJOR) counts; lib*.so.MAJOR.MINOR... are its targets.
        [ "$name" = "${name%%.so.*}.so.$major" ] || continue
        case $major in ''|*[!0-9]*) continue ;; esac
        target=$(resolve "${f#"$ROOT"}") && [ -f "$target" ] || continue
        where=${dir#"$ROOT"}
        if [ "$major" = "$SITE_ABI" ] && { [ "${name%%.so.*}" = libmpich ] || [ -z "$openmpi" ]; }; then
            compatible="$compatible $name ($where)"
        elif [ -n "$openmpi" ]; then
            other="$other, $name of Open MPI in $where"
        else
            other="$other, $name in $where"
        fi
    done
    IFS=$NL
done
IFS=$save_ifs

if [ -z "$compatible" ] && [ -n "$other" ]; then
    fail "the image's MPI does not have the ABI of the site's MPICH" \
        "(libmpi.so.$SITE_ABI/libmpich.so.$SITE_ABI): found ${other#, };" \
        "rebuild the image against an MPI of the MPICH ABI or run it without --module=mpich"
fi
exit 0
