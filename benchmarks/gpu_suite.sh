#!/usr/bin/env bash
# The whole GPU suite, as the one command a session lent a GPU machine runs (a few minutes of device time,
# no network there). Everything runs under one global time limit and writes under benchmarks/results/:
#
#   1. vs_peers.py --device cuda --modes goals: the four rows per network that the issue's goals divide
#      (train/bf16-cl, train/bf16-cl/compiled, b1/fp32, b1/fp32/cuda-graphs), one family at a time, so a
#      short lease still measures the goals of as many architectures as it can; then --profile on the misses;
#   2. vs_peers.py --device cuda --resume: every other configuration, in the time that is left. --resume keeps
#      the rows already in benchmarks/results/vs_peers_cuda.json (this run's, and a previous session's when
#      that file is committed), so successive sessions fill the table instead of starting over;
#   3. benchmarks/lenet_cost.py and benchmarks/train_vs_d2l.py on cuda, if they are there and take --device
#      cuda (train_vs_d2l.py also needs d2l, which the device image lacks), each into its own folder
#      (RESULTS/lenet_cost_cuda/, RESULTS/train_vs_d2l_cuda/) beside their CPU results.
#
# vs_peers.py rewrites its JSON after every row and stops cleanly at its --budget-s; `timeout` is the hard
# stop behind it (a row that hangs), and a killed run still keeps every finished row.
#
# Usage, from anywhere:    bash benchmarks/gpu_suite.sh
# On the device machine:   bash benchmarks/gpu_suite.sh   (with $OUT set, the results are copied there too)
# Environment knobs: SUITE_S (the whole suite's seconds, default 540: the device tool allows 600 a command),
#   PYTHON (default .venv/bin/python if present, else python3), RESULTS (default benchmarks/results),
#   VS_PEERS_ARGS (extra vs_peers.py flags for both passes, e.g. "--only resnet50_v1_5,mobilenet_v2").
set -u -o pipefail
cd "$(dirname "$0")/.."
SUITE_S=${SUITE_S:-540}
RESULTS=${RESULTS:-benchmarks/results}
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_suite.log"
START=$(date +%s)
left() { echo $(( SUITE_S - ($(date +%s) - START) )); }

# run SECONDS CMD...: CMD under `timeout`, never past the suite's end; its exit status is logged, not fatal
run() {
    local limit=$1; shift
    local rest; rest=$(left)
    (( limit > rest )) && limit=$rest
    if (( limit < 20 )); then echo "gpu_suite: no time left for: $*"; return 0; fi
    echo "gpu_suite: [$(( $(date +%s) - START )) s] (limit ${limit} s) $*"
    timeout -k 15 "$limit" "$@"
    RUN_STATUS=$?
    echo "gpu_suite: exit status $RUN_STATUS after $(( $(date +%s) - START )) s"
}
RUN_STATUS=0

# has_flag SCRIPT FLAG: the script exists and its --help names FLAG
has_flag() { [ -f "$1" ] && "$PY" "$1" --help 2>/dev/null | grep -q -- "$2"; }

{
    echo "gpu_suite: $(date -Is), $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
        2>/dev/null || echo 'no nvidia-smi'), python $PY, suite limit ${SUITE_S} s"
    if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "gpu_suite: this python's torch sees no CUDA device; nothing to run (run this on the GPU machine)"
        exit 2
    fi
    VS=(benchmarks/vs_peers.py --device cuda --one-peer --out "$RESULTS/vs_peers_cuda")
    # Pass 1 starts rows for 40% of the time, then profiles for 60 s; 90 s more let a compiled row that began
    # just before its budget ran out finish. Pass 2 has what is left, less 60 s for the LeNet/d2l scripts.
    R1=$(( SUITE_S * 40 / 100 ))
    # shellcheck disable=SC2086  # VS_PEERS_ARGS is a list of flags
    run $(( R1 + 150 )) "$PY" "${VS[@]}" --resume --modes goals --budget-s "$R1" --profile --profile-s 60 \
        ${VS_PEERS_ARGS:-}
    if (( RUN_STATUS == 2 )); then  # a one-line refusal, e.g. --resume of results from another GPU model
        VS=(benchmarks/vs_peers.py --device cuda --one-peer --out "$RESULTS/vs_peers_cuda_new")
        echo "gpu_suite: writing to $RESULTS/vs_peers_cuda_new instead"
        # shellcheck disable=SC2086
        run $(( R1 + 150 )) "$PY" "${VS[@]}" --resume --modes goals --budget-s "$R1" --profile --profile-s 60 \
            ${VS_PEERS_ARGS:-}
    fi
    T2=$(( $(left) - 60 ))
    # shellcheck disable=SC2086
    if (( T2 > 120 )); then run "$T2" "$PY" "${VS[@]}" --resume --budget-s $(( T2 - 90 )) ${VS_PEERS_ARGS:-}; fi
    if has_flag benchmarks/lenet_cost.py --device; then
        run 40 "$PY" benchmarks/lenet_cost.py --device cuda --out "$RESULTS/lenet_cost_cuda"
    else
        echo "gpu_suite: benchmarks/lenet_cost.py is missing or takes no --device; left out"
    fi
    if has_flag benchmarks/train_vs_d2l.py --device && "$PY" -c "import d2l" 2>/dev/null; then
        run 40 "$PY" benchmarks/train_vs_d2l.py --device cuda --out "$RESULTS/train_vs_d2l_cuda"
    else
        echo "gpu_suite: benchmarks/train_vs_d2l.py takes no --device cuda here (or d2l is not installed); left out"
    fi
    echo "gpu_suite: done in $(( $(date +%s) - START )) s"
} 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}

# On the device machine only what lands in $OUT comes back (at most 8 files): the suite's results and log.
if [ -n "${OUT:-}" ] && [ -d "$OUT" ] && [ "$(cd "$OUT" && pwd)" != "$(cd "$RESULTS" && pwd)" ]; then
    for f in "$RESULTS"/vs_peers_cuda*.json "$RESULTS"/vs_peers_cuda*.md "$RESULTS"/vs_peers_cuda*.png "$LOG"; do
        [ -f "$f" ] && cp "$f" "$OUT"/
    done
    for d in lenet_cost_cuda train_vs_d2l_cuda; do  # as <folder>_<file>: $OUT keeps no deeper folders
        for f in "$RESULTS/$d"/*.json "$RESULTS/$d"/*.md; do
            [ -f "$f" ] && cp "$f" "$OUT/${d}_$(basename "$f")"
        done
    done
fi
exit "$status"
