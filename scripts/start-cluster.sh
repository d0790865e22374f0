#!/usr/bin/env bash
# Starts a sluice standalone cluster: `sluice jobmanager` on the host of
# conf/masters (one line host[:rest-port]) and one `sluice taskmanager` per
# line of conf/workers (one host per line), as Flink's start-cluster.sh does.
# Local hosts are started directly, others over ssh with the same paths.
# Logs go to log/ (SLUICE_LOG_DIR), pid files to /tmp (SLUICE_PID_DIR); the
# configuration is conf/ (SLUICE_CONF_DIR). Daemons already running are left
# alone, so running it twice starts nothing twice. Stop with stop-cluster.sh.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
conf_dir="${SLUICE_CONF_DIR:-$root/conf}"
export SLUICE_CONF_DIR="$conf_dir"
# shellcheck source=scripts/cluster-hosts.sh
. "$root/scripts/cluster-hosts.sh"

read_masters
read_workers

rest_args=()
[ -n "$master_port" ] && rest_args=(--rest-port "$master_port")
on_host "$master_host" "$root/scripts/sluice-daemon.sh" start jobmanager 0 "${rest_args[@]}"

# TaskManagers on other hosts must find the JobManager by its host name.
tm_args=()
is_local "$master_host" || tm_args=(-D "jobmanager.rpc.address=$master_host")
i=0
for host in "${workers[@]}"; do
  on_host "$host" "$root/scripts/sluice-daemon.sh" start taskmanager "$i" "${tm_args[@]}"
  i=$((i + 1))
done
echo "sluice: cluster started; REST API at http://$master_host:${master_port:-<rest.port>}"
