# shellcheck shell=bash
# Every job script starts with this: the CLI image's oidc-broker, or else the release's npm package run by npx.
set -eu
if command -v oidc-broker >/dev/null 2>&1; then broker() { oidc-broker "$@"; }
elif [ -n "${OIDC_BROKER_PACKAGE:-}" ]; then broker() { npx --yes --package "$OIDC_BROKER_PACKAGE" oidc-broker "$@"; }
else echo "oidc-broker is not on PATH: run the CLI image (the image input or the job's image) or set OIDC_BROKER_PACKAGE to the release's npm tarball" >&2; exit 2; fi
