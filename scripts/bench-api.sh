#!/usr/bin/env bash
# Web UI and REST API speed: sequential requests over one keep-alive HTTPS
# connection (curl), against a release server holding N sensors (registered
# through the API, so pending). Reports requests/s and mean latency for the
# sensor listing (JSON), a small JSON endpoint, and the rendered Sensors page.
# Usage: scripts/bench-api.sh [SENSORS=1000] [REQUESTS=500]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
R=${2:-500}
# The d4 binary ($D4_BIN when set: see scripts/bench-vs.sh).
. scripts/common.sh
W=$(mktemp -d)
"$D4" server --data-dir "$W/data" --listen 127.0.0.1:0 --web 127.0.0.1:0 --mode registration 2>"$W/log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$W"' EXIT
while [ ! -s "$W/data/server.json" ]; do sleep 0.1; done
API=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$W/data/server.json")
CA="$W/data/tls/ca.crt"
KEY=$(awk '/^api_key:/ {print $2}' "$W/data/DEFAULT_PASSWORD")
PW=$(awk '/^password:/ {print $2}' "$W/data/DEFAULT_PASSWORD")
# N registrations in one curl process.
for _ in $(seq "$N"); do
  printf 'cacert = "%s"\nurl = "%s/api/v1/add/sensor/register"\nheader = "Authorization: %s"\nheader = "Content-Type: application/json"\ndata = "{\\"uuid\\": \\"%s\\", \\"hmac_key\\": \\"k\\"}"\noutput = /dev/null\nnext\n' \
    "$CA" "$API" "$KEY" "$(cat /proc/sys/kernel/random/uuid)"
done | sed '$d' >"$W/reg.cfg"
curl -s -K "$W/reg.cfg"
# A browser session (first login, forced password change).
J="$W/jar"
csrf() { grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//'; }
T=$(curl -s --cacert "$CA" -c "$J" -b "$J" "$API/login" | csrf)
curl -s --cacert "$CA" -c "$J" -b "$J" -o /dev/null --data-urlencode "csrf=$T" --data-urlencode user=admin --data-urlencode "password=$PW" "$API/login"
T=$(curl -s --cacert "$CA" -c "$J" -b "$J" "$API/password" | csrf)
curl -s --cacert "$CA" -c "$J" -b "$J" -o /dev/null --data-urlencode "csrf=$T" --data-urlencode "current=$PW" \
  --data-urlencode "new=benchmark password" --data-urlencode "confirm=benchmark password" "$API/password"
run() { # name, url, one curl config line (header or cookie)
  local name=$1 url=$2 extra=$3
  # curl resets options at each `next`: every request carries its own.
  for _ in $(seq "$R"); do printf 'cacert = "%s"\n%s\nurl = "%s"\noutput = /dev/null\nnext\n' "$CA" "$extra" "$url"; done | sed '$d' >"$W/run.cfg"
  local size t0 t1
  size=$(head -4 "$W/run.cfg" | sed 's#output = /dev/null##' | curl -s -K - | wc -c)
  t0=$(date +%s.%N)
  curl -s -K "$W/run.cfg"
  t1=$(date +%s.%N)
  python3 -c "import sys; n,t=int(sys.argv[1]),float(sys.argv[2]); print(f'{sys.argv[3]:<34} {n/t:8.0f} req/s  {1000*t/n:7.2f} ms/request  ({int(sys.argv[4])} bytes)')" \
    "$R" "$(echo "$t1 - $t0" | bc)" "$name" "$size"
}
echo "$N sensors, $R sequential requests each, one keep-alive connection"
AUTH="header = \"Authorization: $KEY\""
COOKIE="cookie = \"$J\""
run "GET /api/v1/server" "$API/api/v1/server" "$AUTH"
run "GET /api/v1/sensors ($N sensors)" "$API/api/v1/sensors" "$AUTH"
run "GET /sensors page ($N rows)" "$API/sensors" "$COOKIE"
run "GET / dashboard" "$API/" "$COOKIE"
