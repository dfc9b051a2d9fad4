#!/usr/bin/env bash
# Submit `vaegan-dist train ARGS...` to a Ray cluster as a job, from the repository root's checkout.
#   RAY_ADDRESS=http://HEAD:8265 cluster/submit.sh --preset celeba64 data.source=s3://B/celeba64 \
#       train.storage_path=s3://B/runs train.workers=8
# RAY_ADDRESS is the dashboard: reach a remote one through an SSH tunnel (`ray dashboard cluster/aws.yaml`)
# or `kubectl port-forward`; it is never exposed to the internet. Token authentication is on: the token
# comes from ~/.ray/auth_token or RAY_AUTH_TOKEN.
set -euo pipefail
: "${RAY_ADDRESS:?set RAY_ADDRESS=http://<head>:8265}"
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
cd "$(dirname "$0")/.."
# A cluster that has just started (or is busy) can refuse a submission with "No available agent to submit
# job" until its job agent is up: only that refusal is retried, 5 times 10 s apart; any other failure,
# including the job's own, ends the script with its status.
attempts=6
for attempt in $(seq 1 "$attempts"); do
  log=$(mktemp)
  set +e
  ray job submit --address "$RAY_ADDRESS" --working-dir . --runtime-env cluster/runtime_env.yaml \
    -- python -m vaegan_dist.cli.main train "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ] && [ "$attempt" -lt "$attempts" ] && grep -q "No available agent to submit job" "$log"; then
    rm -f "$log"
    echo "submit.sh: the cluster's job agent is not up yet; retrying in 10 s (attempt $((attempt + 1)) of $attempts)" >&2
    sleep 10
    continue
  fi
  rm -f "$log"
  exit "$status"
done
