#!/usr/bin/env bash
# The folder source's throughput: N files of SIZE bytes (lines) dropped in a
# folder, sent by `d4 client` (source folder, --once) to stdout (/dev/null),
# next to `cat` of the same files piped into `d4 client` (stdin) in the same
# run. Files/s (wall) and CPU-seconds per GB of file content.
# Usage: scripts/bench-folder.sh [FILES=10000] [SIZE=16384]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
SIZE=${2:-16384}
. scripts/common.sh
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/c/in"
echo stdout >"$W/c/destination"; echo 3 >"$W/c/type"
echo "private key to change" >"$W/c/key"; cat /proc/sys/kernel/random/uuid >"$W/c/uuid"
python3 - "$W/c/in" "$N" "$SIZE" <<'PY'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
line = b"x" * 99 + b"\n"
body = (line * (size // 100 + 1))[:size - 1] + b"\n"
for i in range(n):
    with open(os.path.join(d, f"f{i:06}.log"), "wb") as f:
        f.write(body)
PY
cp -r "$W/c" "$W/s"; rm -rf "$W/s/in"; echo stdin >"$W/s/source"
echo folder >"$W/c/source"; echo in >"$W/c/folder"; echo 100 >"$W/c/folder_settle_ms"
sleep 0.2  # older than the settle time: sent at first sight
cat "$W"/c/in/* >/dev/null  # warm the page cache
TIMEFORMAT='%R %U %S'
f=$( { time "$D4" client -c "$W/c" --once >/dev/null 2>"$W/folder.log"; } 2>&1 )
s=$( { time (cat "$W"/c/in/* | "$D4" client -c "$W/s" >/dev/null); } 2>&1 )
test "$(wc -l <"$W/c/folder.sent")" = "$N"
python3 - "$N" "$SIZE" "$f" "$s" <<'PY'
import sys
n, size = int(sys.argv[1]), int(sys.argv[2])
gb = n * size / 1e9
for name, t in (("folder source", sys.argv[3]), ("cat files | d4 client", sys.argv[4])):
    real, user, sys_ = map(float, t.split())
    print(f"{name:22s} {n / real:8.0f} files/s  {(user + sys_) / gb:6.2f} CPU-s/GB  ({n} files of {size} B, {real:.2f} s wall)")
PY
