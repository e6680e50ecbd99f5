# Shared settings for the test bed. Sourced by bed and by the integration tests.
# Everything the bed creates lives under BED_DIR, outside the source tree, because the non-root test
# users and the setuid binary must reach it whatever the permissions of the checkout.
BED_DIR=${BED_DIR:-/var/tmp/shifter-bed}
BED_ENV=$BED_DIR/env
BED_USER=${BED_USER:-shiftertest}
BED_USER2=${BED_USER2:-shiftertest2}
BED_HOST=$(hostname -s)

bed_log() { printf 'bed: %s\n' "$*" >&2; }
bed_die() { printf 'bed: error: %s\n' "$*" >&2; exit 1; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
    local seconds=$1 what=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { bed_log "timed out after ${seconds}s waiting for $what"; return 1; }
        sleep 0.2
    done
}

# pid_alive FILE: true when FILE names a live process (a zombie awaiting its parent does not count).
pid_alive() {
    local pid state
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# stop_pidfile FILE: terminates the process named in FILE, then kills it if it lingers.
stop_pidfile() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file" 2>/dev/null)
    if pid_alive "$file"; then
        kill "$pid" 2>/dev/null
        for _ in $(seq 50); do pid_alive "$file" || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$file"
}
