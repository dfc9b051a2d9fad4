#!/usr/bin/env bash
# A real 2-node Ray cluster on this machine, on loopback only, with token authentication.
#   cluster/local_cluster.sh start [GCS_PORT] [DASHBOARD_PORT]     (defaults 6379 8265)
#   cluster/local_cluster.sh stop
# Then, from the repository root:
#   RAY_ADDRESS=http://127.0.0.1:8265 cluster/submit.sh --preset smoke train.shared_storage=true
# (both nodes see this machine's disk, so a local storage path counts as shared here)
set -euo pipefail
export RAY_AUTH_MODE=token
command=${1:-start}
gcs_port=${2:-6379}
dashboard_port=${3:-8265}
cpus=${CPUS_PER_NODE:-1}
case "$command" in
  start)
    [ -s "${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}" ] || ray get-auth-token --generate > /dev/null
    ray start --head --node-ip-address=127.0.0.1 --port="$gcs_port" --dashboard-host=127.0.0.1 \
      --dashboard-port="$dashboard_port" --num-cpus="$cpus" --disable-usage-stats
    ray start --address="127.0.0.1:$gcs_port" --node-ip-address=127.0.0.1 --num-cpus="$cpus" --disable-usage-stats
    echo "2-node cluster up; submit jobs with RAY_ADDRESS=http://127.0.0.1:$dashboard_port cluster/submit.sh ..."
    ;;
  stop)
    ray stop --force
    ;;
  *)
    echo "usage: $0 start [GCS_PORT] [DASHBOARD_PORT] | stop" >&2
    exit 2
    ;;
esac
