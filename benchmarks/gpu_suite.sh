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
#      (RESULTS/lenet_cost_cuda/, RESULTS/train_vs_d2l_cuda/) beside their CPU results;
#   4. benchmarks/fm_budget.py --device cuda: Fashion-MNIST accuracy in FM_BUDGET_S seconds per network and the
#      time to 94 % and 95 % (the issue's goal: 95 % within 5 minutes), when the data is there (FM_DATA_DIR, or
#      where `convzoo data` finds it: carry the four .gz files, about 30 MB, since the device has no network).
#
# vs_peers.py rewrites its JSON after every row and stops cleanly at its --budget-s; `timeout` is the hard
# stop behind it (a row that hangs), and a killed run still keeps every finished row.
#
# Usage, from anywhere:    bash benchmarks/gpu_suite.sh
# On the device machine:   bash benchmarks/gpu_suite.sh   (with $OUT set, the results are copied there too)
# Environment knobs: SUITE_S (the whole suite's seconds, default 540: the device tool allows 600 a command),
#   PYTHON (default .venv/bin/python if present, else python3), RESULTS (default benchmarks/results),
#   VS_PEERS_ARGS (extra vs_peers.py flags for both passes, e.g. "--only resnet50_v1_5,mobilenet_v2"),
#   FM_BUDGET_S (default 120; 0 leaves step 4 out), FM_NETWORKS (default resnet18@32), FM_DATA_DIR.
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
    FM_S=${FM_BUDGET_S:-120}
    FM_NETS=${FM_NETWORKS:-resnet18@32}
    FM_N=$(( $(echo "$FM_NETS" | tr -cd , | wc -c) + 1 ))
    FM_RESERVE=0
    if (( FM_S > 0 )); then FM_RESERVE=$(( (FM_S + 30) * FM_N )); fi
    T2=$(( $(left) - 60 - FM_RESERVE ))
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
    if (( FM_S > 0 )); then
        FM_EXTRA=()
        if [ -n "${FM_DATA_DIR:-}" ]; then FM_EXTRA=(-- --data-dir "$FM_DATA_DIR"); fi
        if [ -n "${FM_DATA_DIR:-}" ] || "$PY" -m convzoo data list 2>/dev/null | grep "^fashion-mnist" \
                | grep -vq "not found"; then
            run "$FM_RESERVE" "$PY" benchmarks/fm_budget.py --device cuda --budget "$FM_S" --networks "$FM_NETS" \
                --targets 0.9,0.92,0.94,0.95 --out "$RESULTS" "${FM_EXTRA[@]}"
        else
            echo "gpu_suite: no Fashion-MNIST files here (set FM_DATA_DIR); fm_budget.py left out"
        fi
    fi
    echo "gpu_suite: done in $(( $(date +%s) - START )) s"
} 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}

# On the device machine only what lands in $OUT comes back (at most 8 files, two folders down): one tarball of
# every result file the suite wrote (unpack it in the repository root), the log, and the two main tables to read.
if [ -n "${OUT:-}" ] && [ -d "$OUT" ] && [ "$(cd "$OUT" && pwd)" != "$(cd "$RESULTS" && pwd)" ]; then
    made=()
    for f in "$RESULTS"/vs_peers_cuda* "$RESULTS"/fm_budget_cuda.* "$RESULTS"/lenet_cost_cuda \
             "$RESULTS"/train_vs_d2l_cuda "$LOG"; do
        [ -e "$f" ] && made+=("$f")
    done
    if (( ${#made[@]} )); then tar czf "$OUT/gpu_results.tar.gz" "${made[@]}"; fi
    for f in "$LOG" "$RESULTS/vs_peers_cuda.md" "$RESULTS/fm_budget_cuda.md"; do
        [ -f "$f" ] && cp "$f" "$OUT"/
    done
fi
exit "$status"
