#!/usr/bin/env bash
# Makes sure the Debian packages dualreg builds, runs and tests with are present
# (--fuzz: also those `make fuzz` needs).
# As root, missing packages are installed with apt-get (after one `apt-get update`);
# otherwise the exact command to run is printed and the script fails.
set -euo pipefail

packages=(
  gcc make pkg-config
  libevent-dev libpq-dev libcjson-dev libcurl4-openssl-dev libssl-dev
  libinih-dev libsystemd-dev libargon2-dev liboath-dev libqrencode-dev check
  postgresql-15 postgresql-client-15
  valgrind curl ca-certificates openssl systemd
  # the web app's browser tests (tests/browser): puppeteer-core drives this browser
  chromium
)
# `make fuzz` only (scripts/deps.sh --fuzz): clang and its libFuzzer runtime, which
# Debian ships as a separate package that clang merely recommends. `make check` and
# `make run` do not need them.
fuzz_packages=(clang libclang-rt-dev)
if [[ ${1:-} == --list ]]; then printf '%s\n' "${packages[@]}" nodejs npm; exit 0; fi
if [[ ${1:-} == --fuzz ]]; then packages+=("${fuzz_packages[@]}"); fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done
# Node.js and npm run the test tools (the OpenAPI linter and contract checker, pinned in
# package-lock.json). A machine that has them already, from Debian or elsewhere, keeps
# them; otherwise Debian's packages are installed.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "dualreg: missing Debian packages. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "dualreg: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
