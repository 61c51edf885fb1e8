#!/usr/bin/env bash
# The 16-core rows, in one call on a lent machine (the device tool's `run`):
#   run(command="bash bench/lent_machine.sh", carry=[".whl"], timeout_s=560)
# .whl holds plait's wheel built here for the machine's Python (3.12) and faster-fifo's:
#   python3.12 -m pip wheel --no-deps -w .whl . && pip download faster-fifo (cp312) -d .whl
# What it writes under $OUT (scaling.json, fanin_16.json, shared.txt, logs) comes back;
# `python bench/report.py` then takes the JSON files copied into bench/results/.
set -u
OUT=${OUT:-/tmp/lent-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
python3 -c "import sys, os, plait, plait._speedups, plait._ipc._robust; print(sys.version, os.cpu_count(), plait.__file__)" || exit 1
uptime
SCALING_BUDGET=${SCALING_BUDGET:-250}
timeout $((SCALING_BUDGET + 40)) python3 bench/bench_scaling.py --budget "$SCALING_BUDGET" \
    --cases "${SCALING_CASES:-pool,queue,lock}" ${SCALING_FLAGS:---put-gate} \
    --out "$OUT/scaling.json" > "$OUT/scaling.log" 2>&1
echo "scaling: rc $?"; tail -n 45 "$OUT/scaling.log"
[ -n "${SKIP_FANIN:-}" ] || timeout 150 python3 bench/bench_fanin_batch.py --producers "${FANIN_PRODUCERS:-8,15}" \
    --topic fanin_16 --out-dir "$OUT" > "$OUT/fanin.log" 2>&1
echo "fanin: rc $?"; grep -E "msg/s|producers" "$OUT/fanin.log" | tail -n 20
[ -n "${SKIP_SHARED:-}" ] || timeout 100 python3 bench/bench_shared.py --readers 15 --repeats 3 > "$OUT/shared.txt" 2>&1
echo "shared: rc $?"; cat "$OUT/shared.txt"
uptime
