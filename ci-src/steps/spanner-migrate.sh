# shellcheck shell=bash
# Exchange for the grants (google among them), keep the token file fresh for a long migration, then migrate; a merge
# request pipeline (or OIDC_BROKER_DRY_RUN=true) only prints the plan.
OIDC_BROKER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/oidc-broker.XXXXXX")"
export OIDC_BROKER_DIR
# A shell executor does not end the job's processes: stop the refresh worker once the migration is over, and leave no
# credentials behind.
trap 'kill "$(cat "$OIDC_BROKER_DIR/refresh.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$OIDC_BROKER_DIR"' EXIT
broker exchange --broker "$OIDC_BROKER_URL" --grants-json "$OIDC_BROKER_GRANTS" --out "$OIDC_BROKER_DIR" --dotenv "$OIDC_BROKER_DIR/broker.env" --refresh
set -a
# shellcheck source=/dev/null # written by the exchange above
. "$OIDC_BROKER_DIR/broker.env"
set +a
# The input wins over the role the broker's rule names (SPANNER_DATABASE_ROLE from the dotenv).
database_role="${OIDC_BROKER_SPANNER_DATABASE_ROLE:-${SPANNER_DATABASE_ROLE:-}}"
dry_run="${OIDC_BROKER_DRY_RUN:-false}"
if [ "${CI_PIPELINE_SOURCE:-}" = "merge_request_event" ]; then
  echo "merge request pipeline: printing the plan, changing nothing"
  dry_run=true
fi
if [ "$dry_run" = "true" ]; then dry_run_flag=--dry-run; else dry_run_flag=; fi
broker spanner migrate --database "$SPANNER_DATABASE" --dir "$OIDC_BROKER_MIGRATIONS_DIR" --lock-timeout "$OIDC_BROKER_LOCK_TIMEOUT" ${database_role:+--database-role "$database_role"} ${dry_run_flag:+"$dry_run_flag"}
