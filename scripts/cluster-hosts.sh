# shellcheck shell=bash
# shellcheck disable=SC2154  # conf_dir is set by the script that sources this
# Sourced by start-cluster.sh and stop-cluster.sh: reads conf/masters and
# conf/workers and runs a command on a host (directly when it is this one,
# else over ssh with the same paths and SLUICE_* environment).

die() { echo "sluice: $*" >&2; exit 1; }

# Lines without comments and blanks.
conf_lines() { sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^[[:space:]]*$/d' "$1"; }

read_masters() {
  local f="$conf_dir/masters" line
  [ -f "$f" ] || die "no $f (one line: host[:rest-port])"
  line="$(conf_lines "$f" | head -n 1)"
  [ -n "$line" ] || die "$f names no host"
  master_host="${line%%:*}"
  master_port=""
  if [ "$line" != "$master_host" ]; then
    master_port="${line#*:}"
    [[ "$master_port" =~ ^[0-9]+$ ]] || die "$f: '$line' is not host[:rest-port]"
  fi
}

read_workers() {
  local f="$conf_dir/workers"
  [ -f "$f" ] || die "no $f (one host per line)"
  mapfile -t workers < <(conf_lines "$f")
  [ "${#workers[@]}" -gt 0 ] || die "$f names no host"
}

is_local() {
  case "$1" in
    localhost|127.0.0.1|::1|"$(hostname)"|"$(hostname -f 2>/dev/null || hostname)") return 0 ;;
  esac
  return 1
}

on_host() {
  local host="$1"
  shift
  if is_local "$host"; then
    "$@"
  else
    local env="" v q
    for v in SLUICE_BIN SLUICE_CONF_DIR SLUICE_LOG_DIR SLUICE_PID_DIR SLUICE_STOP_TIMEOUT \
             SLUICE_START_TIMEOUT SLUICE_IDENT_STRING; do
      [ -n "${!v:-}" ] && env+="$v=$(printf '%q' "${!v}") "
    done
    printf -v q '%q ' "$@"
    ssh -n "$host" "$env$q"
  fi
}
