#!/usr/bin/env bash
# A real 2-node Ray cluster on this machine, on loopback only, with token authentication.
#   cluster/local_cluster.sh start [GCS_PORT] [DASHBOARD_PORT]     (defaults 6379 8265)
#   cluster/local_cluster.sh stop [GCS_PORT]                        (only this cluster: other Ray clusters on
#                                                                    the machine, local ray.init ones included, live on)
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
    # Not `ray stop`, which stops every Ray process on the machine. The processes that name this cluster's
    # GCS port in their arguments (GCS, raylets, dashboard, monitors), then everything they started (workers,
    # agents): SIGTERM, at most 10 s of grace, then SIGKILL.
    python - "$gcs_port" <<'PY'
import os, re, signal, sys, time

port = sys.argv[1]
own = re.compile(rf"^--(gcs_server_port={port}|gcs-address=[^ ]*:{port}|address=[^ ]*:{port})$")


def table():
    parents, args = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args[int(entry)] = f.read().decode(errors="replace").split("\0")
        except (OSError, IndexError, ValueError):
            continue
    return parents, args


def ours():
    parents, args = table()
    found = {pid for pid, argv in args.items() if any(own.match(a) for a in argv)}
    grown = True
    while grown:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        grown, found = bool(children), found | children
    return found - {os.getpid()}


for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
    pids = ours()
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if os.path.exists(f"/proc/{pid}")}
        time.sleep(0.2)
    if not pids:
        break
# `ray start --head` recorded this cluster as the machine's current one: a later plain ray.init() would try
# to join it (and time out) instead of starting its own. Forget it if it is this one, as `ray stop` does.
current = os.path.join(os.environ.get("RAY_TMPDIR", "/tmp"), "ray", "ray_current_cluster")
try:
    with open(current) as f:
        if f.read().strip().endswith(f":{port}"):
            os.remove(current)
except OSError:
    pass
print(f"stopped the cluster on GCS port {port}")
PY
    ;;
  *)
    echo "usage: $0 start [GCS_PORT] [DASHBOARD_PORT] | stop [GCS_PORT]" >&2
    exit 2
    ;;
esac
