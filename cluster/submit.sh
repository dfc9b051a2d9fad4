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
exec ray job submit --address "$RAY_ADDRESS" --working-dir . --runtime-env cluster/runtime_env.yaml \
  -- python -m vaegan_dist.cli.main train "$@"
