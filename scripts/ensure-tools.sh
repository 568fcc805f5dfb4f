#!/usr/bin/env bash
# `npm test`'s pretest step: makes sure every outside tool the suites use is on this machine.
# A missing tool is installed from Debian's packages when we are root with apt; otherwise this fails with the exact
# command to run. A suite never skips because a tool is missing.
set -euo pipefail

# One line per tool: <command to look for> <Debian package that provides it>
TOOLS=(
  "openssl openssl"
  "go golang-go"
  "git git"
  "rsync rsync"
  "shellcheck shellcheck"
)

missing=()
for entry in "${TOOLS[@]}"; do
  read -r cmd pkg <<<"$entry"
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done

[ ${#missing[@]} -eq 0 ] && exit 0
# Several tools may come from one package.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "pretest: installing ${missing[*]} (Debian packages the test suites use)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi

echo "pretest: the test suites need these Debian packages: ${missing[*]}" >&2
echo "pretest: install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
exit 1
