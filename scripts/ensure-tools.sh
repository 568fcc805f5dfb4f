#!/usr/bin/env bash
# `npm test`'s pretest step: makes sure every outside tool the suites use is on this machine.
# A missing tool is installed from Debian's packages when we are root with apt; otherwise this fails with the exact
# command to run. A suite never skips because a tool is missing.
set -euo pipefail

# One line per tool: <command to look for> <Debian package that provides it>. A command given as an absolute path is
# looked for as that file (tools installed outside PATH, such as the gcloud SDK's emulators).
TOOLS=(
  "openssl openssl"
  "go golang-go"
  "zsh zsh"
  "git git"
  "/usr/lib/google-cloud-sdk/bin/cloud_spanner_emulator/gateway_main google-cloud-cli-spanner-emulator"
)

# Packages Debian's own archive does not carry, with where they come from.
declare -A SOURCES=(
  [google-cloud-cli-spanner-emulator]="Google's apt repository (https://cloud.google.com/sdk/docs/install#deb: add packages.cloud.google.com/apt cloud-sdk main)"
)

missing=()
for entry in "${TOOLS[@]}"; do
  read -r cmd pkg <<<"$entry"
  if [[ "$cmd" == /* ]]; then
    [ -x "$cmd" ] || missing+=("$pkg")
  else
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  fi
done

[ ${#missing[@]} -eq 0 ] && exit 0
# Several tools may come from one package.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "pretest: installing ${missing[*]} (Debian packages the test suites use)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then exit 0; fi
  echo "pretest: apt-get could not install ${missing[*]}" >&2
fi

echo "pretest: the test suites need these Debian packages: ${missing[*]}" >&2
echo "pretest: install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
for pkg in "${missing[@]}"; do
  [ -n "${SOURCES[$pkg]:-}" ] && echo "pretest: $pkg comes from ${SOURCES[$pkg]}" >&2
done
exit 1
