#!/usr/bin/env bash
# Starts or stops one sluice daemon on this host, in the background, with a
# log file and a pid file (used by start-cluster.sh and stop-cluster.sh, also
# over ssh on other hosts):
#   scripts/sluice-daemon.sh start jobmanager|taskmanager INDEX [sluice args...]
#   scripts/sluice-daemon.sh stop  jobmanager|taskmanager INDEX|all
# Environment: SLUICE_BIN (build/sluice, or bin/sluice of an install),
# SLUICE_CONF_DIR (conf/), SLUICE_LOG_DIR (log/), SLUICE_PID_DIR (/tmp),
# SLUICE_STOP_TIMEOUT (10 s, then SIGKILL), SLUICE_START_TIMEOUT (10 s to
# come up), MALLOC_ARENA_MAX (4 unless set: glibc's per-thread arenas keep
# memory RocksDB freed; docs/dependencies.md).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# The binary: build/sluice in a source tree; <prefix>/bin/sluice when these
# scripts are installed (in <prefix>/share/sluice/scripts, conf/ beside them).
default_bin="$root/build/sluice"
if [ ! -x "$default_bin" ] && [ -x "$root/../../bin/sluice" ]; then
  default_bin="$(cd "$root/../../bin" && pwd)/sluice"
fi
bin="${SLUICE_BIN:-$default_bin}"
conf_dir="${SLUICE_CONF_DIR:-$root/conf}"
log_dir="${SLUICE_LOG_DIR:-$root/log}"
pid_dir="${SLUICE_PID_DIR:-/tmp}"
ident="${SLUICE_IDENT_STRING:-${USER:-$(id -un)}}"
stop_timeout="${SLUICE_STOP_TIMEOUT:-10}"
start_timeout="${SLUICE_START_TIMEOUT:-10}"

die() { echo "sluice-daemon: $*" >&2; exit 1; }

[ $# -ge 3 ] || die "usage: $0 start|stop jobmanager|taskmanager INDEX|all [args...]"
action="$1" role="$2" index="$3"
shift 3
case "$role" in jobmanager|taskmanager) ;; *) die "unknown daemon '$role'";; esac

pid_file() { echo "$pid_dir/sluice-$ident-$1-$2.pid"; }

# A pid still alive and still a sluice process (pids are reused).
running() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q sluice
}

# A pid that has not finished exiting: its command line reads empty once its
# memory is released, before it becomes a zombie (a while for a large process).
exiting() {
  local state
  state="$(sed -n 's/^[0-9]* (.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)"
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

start() {
  [ -x "$bin" ] || die "no sluice binary at $bin: build it first (scripts/build.sh), or set SLUICE_BIN"
  [ -f "$conf_dir/sluice-conf.yaml" ] || die "no sluice-conf.yaml in $conf_dir (set SLUICE_CONF_DIR)"
  mkdir -p "$log_dir" "$pid_dir"
  local pf log pid
  pf="$(pid_file "$role" "$index")"
  if [ -f "$pf" ] && running "$(cat "$pf")"; then
    echo "sluice: $role $index on $(hostname) already running (pid $(cat "$pf"))"
    return 0
  fi
  log="$log_dir/sluice-$ident-$role-$index-$(hostname).log"
  # The previous run's log is kept as .1; moved here, before the start, so the
  # readiness check below never reads the old one.
  [ -f "$log" ] && mv -f "$log" "$log.1"
  : > "$log"
  MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-4}" \
    nohup "$bin" "$role" --config "$conf_dir" "$@" > "$log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$pf"
  # Up means: the JobManager serves REST, the TaskManager has started
  # registering (it keeps retrying until a JobManager answers).
  local ready="REST API on http"
  [ "$role" = taskmanager ] && ready="registering at the JobManager"
  local waited=0
  until grep -q "$ready" "$log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pf"
      echo "sluice: the $role on $(hostname) exited at start; the end of $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    if [ "$waited" -ge $((start_timeout * 10)) ]; then
      echo "sluice: the $role on $(hostname) (pid $pid) is not up after ${start_timeout} s; see $log" >&2
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "sluice: started $role $index on $(hostname) (pid $pid, log $log)"
}

stop_one() {
  local pf="$1" pid
  pid="$(cat "$pf" 2>/dev/null || true)"
  if [ -z "$pid" ] || ! running "$pid"; then
    rm -f "$pf"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0 killed=0
  # Until the process is gone, not only until it stops looking like sluice.
  while exiting "$pid"; do
    if [ "$killed" = 0 ] && [ "$waited" -ge $((stop_timeout * 10)) ]; then
      echo "sluice: $role (pid $pid) did not stop within ${stop_timeout} s: killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      killed=1
    fi
    [ "$waited" -ge $((stop_timeout * 20)) ] && break
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$pf"
  echo "sluice: stopped $role (pid $pid) on $(hostname)"
}

stop() {
  local pf
  if [ "$index" = all ]; then
    for pf in "$pid_dir/sluice-$ident-$role-"*.pid; do
      [ -e "$pf" ] && stop_one "$pf"
    done
  else
    stop_one "$(pid_file "$role" "$index")"
  fi
  return 0
}

case "$action" in
  start) start "$@" ;;
  stop) stop ;;
  *) die "unknown action '$action' (start or stop)" ;;
esac
