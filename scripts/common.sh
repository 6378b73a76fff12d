# Sourced by the benchmark scripts: the d4 binary to measure, and the
# packets-per-CPU-second report they share.

# D4: $D4_BIN when set (scripts/bench-vs.sh sets it to compare two builds),
# else this tree's release build, built first.
if [ -z "${D4_BIN:-}" ]; then cargo build --release -q -p d4; fi
D4=${D4_BIN:-$PWD/target/release/d4}

# report_pps MIB PACKETS "name" "real user sys" ["name" "real user sys"]...:
# packets per CPU-second and CPU-seconds per GB of each timed run.
report_pps() {
  python3 - "$@" <<'PY'
import sys
mib, pkts = int(sys.argv[1]), int(sys.argv[2])
gb = mib * 1024 * 1024 / 1e9
runs = sys.argv[3:]
for name, t in zip(runs[::2], runs[1::2]):
    real, user, sys_ = map(float, t.split())
    cpu = user + sys_
    print(f"{name:22s} {pkts / cpu / 1e6:6.2f} M packets per CPU-s  {cpu / gb:5.2f} CPU-s/GB  ({pkts} packets, {mib} MiB, {real:.2f} s wall)")
PY
}
