#!/usr/bin/env bash
# Runs the walk-throughs of the docs as written, each document in a scratch
# folder of its own, so that a doc that drifts from the code fails the suite.
#
# Usage: scripts/doc-walkthroughs.sh [DOC.md...]   (default: every doc with a walk-through;
#   docs/BENCHMARKS.md holds measurements of minutes each, run by hand, not here)
# Environment: D4_BIN (default: this tree's debug build), D4_SHARED (default ../shared).
#
# Every ```sh block of a document runs, in order, in one shell (`set -e`:
# a failing command fails the document). What a person does by hand is
# stood in for, and nothing else:
#   - `cargo build …` is a no-op and `cargo run --release -- ARGS` is `d4 ARGS`
#     (the binary under test is first on PATH);
#   - `sudo CMD` is CMD; a live `tcpdump … -w -` writes a built capture of
#     200 packets instead of the interface's traffic and ends, like a Ctrl-C;
#   - `d4 server` without `--listen` listens on 127.0.0.1:4443 (loopback only).
# An HTML comment on the line before a block says how to run it:
#   <!-- doc-test: skip REASON -->     not run (the reason is printed)
#   <!-- doc-test: background -->      each line runs in the background, as
#                                      in a terminal of its own (servers);
#                                      waits for each `d4 server`'s server.json
#   <!-- doc-test: timeout N -->       a command that runs until Ctrl-C:
#                                      interrupted (SIGINT) after N seconds
# and a hidden block, run in order, sets up files a doc assumes or checks
# what it shows:
#   <!-- doc-test-run
#   commands
#   -->
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ -z "${D4_BIN:-}" ]; then cargo build -q -p d4 && D4_BIN=$ROOT/target/debug/d4; fi
SHARED=${D4_SHARED:-$ROOT/../shared}
[ -d "$SHARED/data/pcap" ] && SHARED=$(cd "$SHARED" && pwd) || SHARED=
DOCS=("$@")
[ ${#DOCS[@]} = 0 ] && DOCS=(README.md docs/SHARING.md docs/PDNS.md docs/TLS.md docs/TLS-LOOKUP.md docs/API.md docs/OPERATIONS.md docs/MALTRAIL.md docs/CONFIG.md docs/DNS-MONITOR.md docs/DNS-AGGREGATE.md)

BIN=$(mktemp -d)
ln -s "$D4_BIN" "$BIN/d4"
trap 'rm -rf "$BIN"' EXIT

# The generated script of one document: helpers, then its blocks.
generate() { # DOC
  cat <<'PRELUDE'
set -e
set -m
__bg=()
__cleanup() {
  for p in "${__bg[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  for p in "${__bg[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap __cleanup EXIT
trap 'echo "FAILED: block $__n (line $__line) at: $BASH_COMMAND" >&2' ERR
__block() { __n=$1; __line=$2; echo "--- block $1 (line $2)"; }
__skip() { echo "--- block $1 (line $2): not run: $3"; }
__servers=0
__wait_servers() { # N more servers were started
  __servers=$((__servers + $1))
  for _ in $(seq 300); do
    [ "$(find . -maxdepth 3 -name server.json | wc -l)" -ge "$__servers" ] && return 0
    sleep 0.1
  done
  echo "FAILED: block $__n (line $__line): a server did not start" >&2
  tail -5 background.log >&2
  return 1
}
__timed() { # PID SECONDS: interrupt a follower after SECONDS, as a Ctrl-C would
  local end=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
  kill -INT -- "-$1" 2>/dev/null || true
  local s=0
  wait "$1" || s=$?
  case $s in 0 | 130) return 0 ;; *) echo "FAILED: block $__n (line $__line) exited $s" >&2; return 1 ;; esac
}
d4() {
  if [ "${1:-}" = server ]; then
    case " $* " in
      *" --listen "*) command d4 "$@" ;;
      *) command d4 "$@" --listen 127.0.0.1:4443 ;;
    esac
  else
    command d4 "$@"
  fi
}
cargo() {
  if [ "${1:-}" = run ]; then
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done
    shift
    d4 "$@"
  fi
}
sudo() { "$@"; }
tcpdump() {
  case " $* " in
    *" -r "*) command tcpdump "$@" ;;
    *" -w "*) cat "$__LIVE" ;;
    *) command tcpdump "$@" ;;
  esac
}
PRELUDE
  awk '
    function flush_opts() { opts = "" }
    /^<!-- doc-test: .* -->$/ { opts = $0; sub(/^<!-- doc-test: /, "", opts); sub(/ -->$/, "", opts); next }
    /^<!-- doc-test-run$/ { hidden = 1; n++; printf "__block %d %d\n", n, NR; next }
    hidden && /^-->$/ { hidden = 0; next }
    hidden { print; next }
    /^```sh$/ {
      inblock = 1; n++; start = NR; body = ""; servers = 0
      next
    }
    inblock && /^```$/ {
      inblock = 0
      if (opts ~ /^skip/) {
        reason = opts; sub(/^skip */, "", reason); gsub(/"/, "", reason)
        printf "__skip %d %d \"%s\"\n", n, start, reason
      } else if (opts == "background") {
        # each line on its own, as in its own terminal
        printf "__block %d %d\n", n, start
        k = split(body, lines, "\n")
        for (i = 1; i <= k; i++) if (lines[i] !~ /^[ \t]*(#.*)?$/)
          printf "( %s\n) >>background.log 2>&1 &\n__bg+=($!)\n", lines[i]
        printf "__wait_servers %d\n", servers
      } else if (opts ~ /^timeout /) {
        t = opts; sub(/^timeout /, "", t)
        printf "__block %d %d\n( %s) &\n__timed $! %d\n", n, start, body, t
      } else {
        printf "__block %d %d\n%s", n, start, body
      }
      opts = ""
      next
    }
    inblock {
      body = body $0 "\n"
      if ($0 ~ /(^|[ ;&|(])d4 server/ || $0 ~ /cargo run.*-- server/) servers++
      next
    }
    { if ($0 !~ /^[ \t]*$/) opts = "" }
  ' "$1"
}

# A small valid capture (Ethernet, IPv4, UDP) for the live-capture stand-in.
mkpcap() { # FILE
  {
    printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x00\x00\x01\x00\x00\x00'
    for i in $(seq 1 200); do
      local a=$((i % 250 + 1))
      printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((i & 255)) $((i >> 8 & 255)) 0 0)"
      printf '\x00\x00\x00\x00\x3c\x00\x00\x00\x3c\x00\x00\x00'
      printf '\x00\x11\x22\x33\x44\x55\x00\x66\x77\x88\x99\xaa\x08\x00'
      printf '\x45\x00\x00\x2e\x00\x00\x00\x00\x40\x11\x00\x00\x0a\x01\x00'
      printf "$(printf '\\x%02x' "$a")"
      printf '\xc0\x00\x02\x01'
      printf '\x30\x39\x00\x35\x00\x1a\x00\x00'
      printf 'd4 walkthrough pkt'
    done
  } >"$1"
}

# Each document runs in a network namespace of its own when one can be made
# (root, or unprivileged user namespaces): the fixed ports the docs use
# (4443, 7000...) then never meet another test's.
NETNS=()
if unshare -n true 2>/dev/null; then NETNS=(unshare -n)
elif unshare -rn true 2>/dev/null; then NETNS=(unshare -rn)
else echo "note: no network namespace here: the docs use the host's ports 4443, 7000..." >&2
fi

PASS=0
FAIL=0
for doc in "${DOCS[@]}"; do
  T=$(mktemp -d)
  mkdir "$T/work"
  [ -n "$SHARED" ] && ln -s "$SHARED" "$T/shared"
  mkpcap "$T/live.pcap"
  generate "$doc" >"$T/run.sh"
  start=$SECONDS
  if (cd "$T/work" && PATH="$BIN:$PATH" __LIVE="$T/live.pcap" SHARED="$SHARED" DOC_ROOT="$ROOT" \
      timeout 600 "${NETNS[@]}" bash -c '[ -z "$1" ] || ip link set lo up; exec bash "$2"' _ "${NETNS[*]}" "$T/run.sh" </dev/null >"$T/out.log" 2>&1); then
    if grep -q '^SKIPPED: ' "$T/out.log"; then
      echo "doc $doc: $(grep -m1 '^SKIPPED: ' "$T/out.log")"
    else
      echo "doc $doc: ok ($(grep -c '^--- block' "$T/out.log") blocks, $(grep -c ': not run:' "$T/out.log") not run, $((SECONDS - start)) s)"
    fi
    PASS=$((PASS + 1))
  else
    echo "doc $doc: FAILED; its last output:"
    tail -25 "$T/out.log" | sed 's/^/    /'
    [ -f "$T/work/background.log" ] && { echo "    background:"; tail -8 "$T/work/background.log" | sed 's/^/    /'; }
    FAIL=$((FAIL + 1))
  fi
  # The docs must leave no secrets in the work tree: they run in their own folder.
  [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
done
echo "doc walk-throughs: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
