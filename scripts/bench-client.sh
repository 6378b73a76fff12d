#!/usr/bin/env bash
# Client encapsulation speed: `d4 client` frames a file to stdout (/dev/null),
# next to `openssl speed -evp sha256` (4 KiB blocks) measured in the same run.
# Usage: scripts/bench-client.sh [MIB=1024] [SNAPLEN=4096]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
SNAP=${2:-4096}
# The d4 binary ($D4_BIN when set: see scripts/bench-vs.sh).
. scripts/common.sh
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
head -c "$((MIB * 1024 * 1024))" /dev/urandom >"$W/in.bin"
mkdir "$W/c"
echo stdout >"$W/c/destination"; echo 1 >"$W/c/type"; echo "$SNAP" >"$W/c/snaplen"
echo "private key to change" >"$W/c/key"; cat /proc/sys/kernel/random/uuid >"$W/c/uuid"
"$D4" client -c "$W/c" --file "$W/in.bin" >/dev/null  # warm the page cache
TIMEFORMAT='%R %U %S'
r=$( { time "$D4" client -c "$W/c" --file "$W/in.bin" >/dev/null; } 2>&1 )
c=$( { time cat "$W/in.bin" >/dev/null; } 2>&1 )
o=$(openssl speed -evp sha256 -bytes 4096 -seconds 3 2>/dev/null | awk '/^sha256|^SHA256/ {print $NF}' | tr -d k)
python3 - "$MIB" "$r" "$c" "$o" "$SNAP" <<'PY'
import sys
mib = int(sys.argv[1]); real, user, sys_ = map(float, sys.argv[2].split())
creal, cuser, csys = map(float, sys.argv[3].split())
ossl_kbs = float(sys.argv[4]) if sys.argv[4] else 0.0
gb = mib * 1024 * 1024 / 1e9
cpu = user + sys_
print(f"input {mib} MiB, snaplen {sys.argv[5]}")
print(f"d4 client -> /dev/null: {gb * 1000 / real:.0f} MB/s wall, {cpu:.2f} CPU-s = {cpu / gb:.2f} CPU-s/GB ({gb * 1000 / cpu:.0f} MB per CPU-second)")
print(f"cat (read baseline):    {(cuser + csys) / gb:.3f} CPU-s/GB")
if ossl_kbs:
    ossl = ossl_kbs * 1000 / 1e6
    print(f"openssl speed -evp sha256 (4096-byte blocks): {ossl:.0f} MB/s per core = {1000 / ossl:.2f} CPU-s/GB")
    print(f"ratio d4 client / openssl sha256: {(gb * 1000 / cpu) / ossl:.2f}")
PY
