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

# Tools the tests run for real: tcpdump (every stored capture must open in
# it), redis-server and redis-cli (the Redis backend and the reference
# analyzers' RPOP contract), Chromium and chromedriver (the web UI). Installed when missing; otherwise those checks
# print "skipped".
install() { # COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing $2"
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null || true; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null \
      || echo "ci.sh: could not install $2; the checks that need it will say 'skipped'"
  else
    echo "ci.sh: $1 not installed; the checks that need it will say 'skipped'"
  fi
}
install tcpdump tcpdump
install curl curl
install redis-server redis-server

# Chromium + chromedriver: the web UI is tested in a real headless browser.
install chromium chromium
install chromedriver chromium-driver

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
# The same end-to-end battery on the Redis backend (each server gets its own
# redis-server): queues, forwarding, restarts and crashes behave alike.
if command -v redis-server >/dev/null 2>&1; then
  echo "== end-to-end battery again on the Redis backend (D4_TEST_STORE=redis)"
  D4_TEST_STORE=redis cargo test -p d4 --test integration --locked -- e2e:: sharing:: 2>&1 | tee -a "$log"
  s2=${PIPESTATUS[0]}
  [ "$status" = 0 ] && status=$s2
else
  echo "ci.sh: redis-server missing: the battery on the Redis backend is skipped"
fi
# Every walk-through of README.md and docs/ as written, in a scratch folder.
echo "== doc walk-throughs"
scripts/doc-walkthroughs.sh 2>&1 | tee -a "$log"
s3=${PIPESTATUS[0]}
[ "$status" = 0 ] && status=$s3
# The fault campaign, short form: floods and slow clients, kill -9 during
# rotation and gzip, a full disk (tmpfs, as root), Redis stopped, under a
# paced stream; nothing the sensors were told was stored may be lost.
echo "== fault campaign (short)"
scripts/fault-campaign.sh --short 2>&1 | tee -a "$log"
s4=${PIPESTATUS[0]}
[ "$status" = 0 ] && status=$s4
set -e
# One closing line for the whole suite (cargo prints one per test binary).
# (cargo's "test result:" lines, the doc walk-throughs' line, the campaign's.)
grep -E '^(test result:|doc walk-throughs:)' "$log" | awk '
  /^test result:/ {p += $4; f += $6}
  /^doc walk-throughs:/ {p += $3; f += $5}
  /^fault campaign: held/ {p += 1}
  /^fault campaign: FAILED/ {f += 1}
  END {printf "tests: %d passed, %d failed\n", p, f}'
exit "$status"
