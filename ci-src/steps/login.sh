# shellcheck shell=bash
# Exchange the job's ID token for the grants in OIDC_BROKER_GRANTS and export the dotenv's variables to the job.
# Assigned, then exported: `export X="$(…)"` would hide a failing mktemp from `set -e`.
OIDC_BROKER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/oidc-broker.XXXXXX")"
export OIDC_BROKER_DIR
broker exchange --broker "$OIDC_BROKER_URL" --grants-json "$OIDC_BROKER_GRANTS" --out "$OIDC_BROKER_DIR" --dotenv "$OIDC_BROKER_DIR/broker.env"
set -a
# shellcheck source=/dev/null # written by the exchange above
. "$OIDC_BROKER_DIR/broker.env"
set +a
