#!/usr/bin/env bash
# `make bench-peer`: the independent mTLS harness (ab/wrk/openssl s_time with a client-certificate
# shim, not ours) run against mutls and its peers, in a scratch copy.
#
#   make bench-peer                                  # ../shared/peer-bench, ec keys, 3 rounds
#   PEER_BENCH=/path/to/peer-bench make bench-peer
#   ROUNDS=5 DURATION=6 SERVERS="uvicorn mutls" make bench-peer
#
# The harness is read-only where it lives: it is copied to a temporary folder, its load
# generators' client-certificate shim is built, its PKI made, and one line is added to its
# servers.conf for mutls (this checkout's .venv, the harness's ASGI app, client certificate
# required and verified, --no-access-log as the peers run without theirs). Its Python peers
# (uvicorn, granian, hypercorn) come from bench/.venv, which `make bench` fills. Needs wrk,
# ab (apache2-utils), nginx, gcc and libssl-dev (installed when absent and run as root).
# The harness's summary is printed and kept under bench/results/peer-bench-<time>/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SOURCE="${PEER_BENCH:-$ROOT/../shared/peer-bench}"
[[ -x "$SOURCE/run_peers.sh" ]] || { echo "bench-peer: no harness at $SOURCE (set PEER_BENCH)" >&2; exit 2; }
[[ -x "$ROOT/.venv/bin/mutls" ]] || { echo "bench-peer: run make deps first" >&2; exit 2; }
[[ -x "$ROOT/bench/.venv/bin/uvicorn" ]] || "$ROOT/.venv/bin/python" -c \
  "import sys; sys.path.insert(0, '$ROOT/bench'); import peers; peers.ensure_debian_packages(); peers.ensure_peers_venv()"
missing=()
for tool in wrk ab nginx gcc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[[ -e /usr/include/openssl/ssl.h ]] || missing+=(libssl-dev)
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk apache2-utils nginx gcc libssl-dev >/dev/null
  else
    echo "bench-peer: missing ${missing[*]} (apt-get install wrk apache2-utils nginx gcc libssl-dev)" >&2
    exit 2
  fi
fi
WORK="$(mktemp -d /tmp/mutls-peer-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cp -r "$SOURCE" "$WORK/peer-bench" && chmod -R u+w "$WORK/peer-bench"
cd "$WORK/peer-bench"
ln -s "$ROOT/bench/.venv" venv
gcc -O2 -shared -fPIC -o tools/mtls_preload.so tools/mtls_preload.c -ldl
./pki.sh >/dev/null
echo "mutls | $ROOT/.venv/bin/mutls serve asgi_app:app --address 127.0.0.1 --port {PORT}" \
  "--cert {CERT} --key {KEY} --client-cert require --verify strict --client-ca {CA}" \
  "--no-access-log" >> servers.conf
export ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-5}" WARMUP="${WARMUP:-1}" SPEED="${SPEED:-0}"
export VARIANTS="${VARIANTS:-ec}" METRICS="${METRICS:-full ka reuse}"
export SERVERS="${SERVERS:-nginx-w1 uvicorn granian mutls}" REFS="${REFS:-uvicorn nginx-w1}"
OUT="$WORK/peer-bench/results/run"
OUTDIR="$OUT" ./run_peers.sh
KEEP="$ROOT/bench/results/peer-bench-$(date -u +%Y-%m-%dT%H%M%SZ)"
mkdir -p "$KEEP" && cp "$OUT"/{raw.tsv,summary.md,env.txt} "$KEEP"/ 2>/dev/null || true
cat "$OUT/summary.md"
echo "kept in $KEEP"
