#!/usr/bin/env bash
# Stops what start-cluster.sh started: the TaskManagers of conf/workers,
# then the JobManager of conf/masters, by their pid files (SIGTERM, then
# SIGKILL after SLUICE_STOP_TIMEOUT seconds, 10 by default). Stopping what is
# not running is no error.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
conf_dir="${SLUICE_CONF_DIR:-$root/conf}"
export SLUICE_CONF_DIR="$conf_dir"
# shellcheck source=scripts/cluster-hosts.sh
. "$root/scripts/cluster-hosts.sh"

read_masters
read_workers

# Each host once: the daemon script stops every TaskManager it runs.
declare -A done_hosts=()
for host in "${workers[@]}"; do
  [ -n "${done_hosts[$host]:-}" ] && continue
  done_hosts[$host]=1
  on_host "$host" "$root/scripts/sluice-daemon.sh" stop taskmanager all
done
on_host "$master_host" "$root/scripts/sluice-daemon.sh" stop jobmanager all
