#!/usr/bin/env bash
# Runs one benchmark script on a baseline build and on this build, interleaved
# (baseline, this, baseline, this, ...), so that their figures come from the
# same command on the same noisy machine and can be compared as ratios.
#
# Usage: scripts/bench-vs.sh BASELINE_BIN [PAIRS=2] SCRIPT [ARGS...]
#   BASELINE_BIN  another build's `d4` binary (e.g. the previous commit built
#                 in a git worktree: git worktree add /tmp/base HEAD~1 &&
#                 (cd /tmp/base && cargo build --release -p d4))
#   SCRIPT        scripts/load.sh, bench-client.sh, bench-anonymize.sh,
#                 bench-backscatter.sh or bench-api.sh (they take D4_BIN)
# Example: scripts/bench-vs.sh /tmp/base/target/release/d4 2 scripts/load.sh 1 512 0 3
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
BASE=$1; shift
PAIRS=2
if [[ $1 =~ ^[0-9]+$ ]]; then PAIRS=$1; shift; fi
SCRIPT=$1; shift
[ -x "$BASE" ] || { echo "bench-vs.sh: baseline binary $BASE not found or not executable" >&2; exit 1; }
[ -x "$SCRIPT" ] || { echo "bench-vs.sh: no script $SCRIPT" >&2; exit 1; }
cargo build --release -q -p d4
NEW=$PWD/target/release/d4
for i in $(seq "$PAIRS"); do
  for side in baseline this; do
    bin=$BASE; [ "$side" = this ] && bin=$NEW
    echo "== pair $i, $side build ($bin): $SCRIPT $*"
    D4_BIN=$bin "$SCRIPT" "$@" | sed "s/^/[$side] /"
  done
done
