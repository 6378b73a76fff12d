#!/usr/bin/env bash
# The whole test suite — what CI runs (.ci/run calls exactly this).
# Installs what the tests need when it is missing (CI: root, no stdin).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo >/dev/null 2>&1; then
  echo "ci.sh: cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
# rustfmt and clippy come with the default rustup profile; add them if absent.
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

# tcpdump: tests check that every stored capture opens in it.
if ! command -v tcpdump >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing tcpdump"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump) >/dev/null \
      || echo "ci.sh: could not install tcpdump; the tcpdump checks will say 'skipped'"
  else
    echo "ci.sh: tcpdump not installed; the tcpdump checks will say 'skipped'"
  fi
fi

# Chromium + chromedriver: the web UI is tested in a real headless browser.
if ! command -v chromedriver >/dev/null 2>&1 || ! { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium chromium-driver"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null \
      || echo "ci.sh: could not install chromium; the browser test will say 'skipped'"
  else
    echo "ci.sh: chromium/chromedriver not installed; the browser test will say 'skipped'"
  fi
fi

if [ ! -d ../shared/data/pcap ] && [ -z "${D4_SHARED:-}" ]; then
  echo "ci.sh: ../shared not found: tests on the reference vectors and real captures will say 'skipped'"
fi

echo "== format"
cargo fmt --all -- --check
echo "== lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite (cargo prints one per test binary).
grep -E '^test result:' "$log" | awk '{p += $4; f += $6} END {printf "tests: %d passed, %d failed\n", p, f}'
exit "$status"
