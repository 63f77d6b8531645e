#!/usr/bin/env bash
# The speed issue's GPU measurements, for one short lease of a GPU machine: every step in priority order under
# its own time limit and one overall deadline, each step's output in its own file under $OUT.
#
#   1. compile every compiled variant at every batch size in parallel, untimed, to fill torch.compile's
#      on-disk caches (the timed steps then load their graphs instead of compiling them one after another);
#   2. on a quiet machine: profile_step.py at the first batch size, throughput.py at each batch size (every
#      implementation, and the whole step in one CUDA graph), the graphed step's numerical check and
#      profile, the fast path against max-autotune (only if its compilation finished in step 1),
#      profile_step.py at the last batch size.
#
# PLAN=autotune runs the experiment this table leads to instead (BENCHMARKS.md, "Where to go next"): the fast
# path against its convolution templates alone and against max-autotune, each with cuDNN's convolution input
# gradients and with them as forward convolutions (conv_backward.py), compiled in parallel within the first
# 60 % of the budget, then those that compiled timed at the first batch size; and conv_backward.py's check.
#
# Usage, from the repository root: OUT=logs bash benchmarks/gpu_session.sh   (rknet from src/, no install)
# DEVICE=cpu SIZES=4 QUICK=1 runs the same steps with tiny settings, to check the script on a CPU.
set -u
OUT=${OUT:-gpu-logs}
DEVICE=${DEVICE:-cuda}
SIZES=${SIZES:-125,512}
BUDGET=${BUDGET:-570}
QUICK=${QUICK:-}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
cd benchmarks || exit 1
deadline=$(($(date +%s) + BUDGET))
small=(${QUICK:+--warmup 1 --steps 1})
rounds=${QUICK:+1}
rounds=${rounds:-3}
first_size=${SIZES%%,*}
last_size=${SIZES##*,}
standard=rknet,rknet-fast,rknet-bf16,rknet-fast-selective,rknet-fast-checkpoint,torchdiffeq,euler,euler-fast
graphs=
[[ $DEVICE == cuda* ]] && graphs=,rknet-graph,rknet-graph-eager

# run LIMIT FILE COMMAND...: COMMAND under min(LIMIT, time to the deadline) seconds, output to $OUT/FILE.
run() {
    local limit=$1 file=$2 left began
    shift 2
    left=$((deadline - $(date +%s)))
    ((left < limit)) && limit=$left
    if ((limit < 15)); then
        echo "skipped $file: $left s left" | tee -a "$OUT/$file"
        return
    fi
    began=$(date +%s)
    echo "== $(date +%T) $file (limit $limit s): $*"
    timeout -k 5 "$limit" "$@" >>"$OUT/$file" 2>&1
    echo "   rc $? after $(($(date +%s) - began)) s"
}

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1
    python3 -c "import torch; print('torch', torch.__version__)" 2>&1
    nproc
} >"$OUT/0-env.txt"
cat "$OUT/0-env.txt"

if [[ ${PLAN:-table} == autotune ]]; then
    variants=(rknet-fast rknet-fast-templates rknet-fast-max-autotune)
    echo "== $(date +%T) compile ${variants[*]}, each with both input gradients, and check conv_backward.py"
    for gradients in cudnn forward; do
        for name in "${variants[@]}"; do
            TORCHINDUCTOR_COMPILE_THREADS=4 timeout -k 5 $((BUDGET * 60 / 100)) python3 throughput.py \
                --device "$DEVICE" --batch-sizes "$first_size" --only "$name" --conv-backward "$gradients" \
                --rounds 1 --warmup 0 --steps 1 --no-equality >"/tmp/warm-$name-$gradients.txt" 2>&1 \
                && echo compiled >>"/tmp/warm-$name-$gradients.txt" &
        done
    done
    timeout -k 5 $((BUDGET * 60 / 100)) python3 conv_backward.py --device "$DEVICE" >"$OUT/1-check.txt" 2>&1
    echo "   check rc $?"
    wait
    tail -n 3 /tmp/warm-*.txt >"$OUT/1-warm.txt"
    for gradients in cudnn forward; do
        ready=$(for name in "${variants[@]}"; do
            grep -qx compiled "/tmp/warm-$name-$gradients.txt" && printf '%s,' "$name"
        done)
        echo "   compiled with $gradients input gradients: ${ready:-none}"
        [[ -n $ready ]] && run 150 "2-autotune-$gradients.txt" python3 throughput.py --device "$DEVICE" \
            --batch-sizes "$first_size" --rounds "$rounds" --only "${ready%,}" --conv-backward "$gradients" \
            --no-equality "${small[@]}"
    done
    grep -h -E "^\||^float64|^one fast" "$OUT"/[12]-*.txt
    exit
fi

echo "== $(date +%T) warm the compile caches"
rm -rf /tmp/warm && mkdir -p /tmp/warm
began=$(date +%s)
declare -A jobs
for size in ${SIZES//,/ }; do
    for name in rknet-fast rknet-fast-selective rknet-fast-checkpoint euler-fast ${graphs:+rknet-graph} \
            rknet-fast-max-autotune; do
        TORCHINDUCTOR_COMPILE_THREADS=4 timeout -k 5 $((BUDGET * 35 / 100)) python3 throughput.py \
            --device "$DEVICE" --batch-sizes "$size" --only "$name" --rounds 1 --warmup 0 --steps 1 \
            --no-equality >"/tmp/warm/$name-$size.txt" 2>&1 &
        jobs[$name-$size]=$!
    done
done
# finish KEY: wait for warm-up KEY and append its exit status and time to its log.
finish() {
    wait "${jobs[$1]}"
    echo "rc $? after $(($(date +%s) - began)) s" >>"/tmp/warm/$1.txt"
}
for key in "${!jobs[@]}"; do
    [[ $key == *max-autotune* ]] || finish "$key"
done
echo "   standard variants compiled after $(($(date +%s) - began)) s"
sleep "${AUTOTUNE_GRACE:-20}"
for key in "${!jobs[@]}"; do
    [[ $key == *max-autotune* ]] && kill "${jobs[$key]}" 2>/dev/null && echo "   $key not done: stopped"
    [[ $key == *max-autotune* ]] && finish "$key"
done
for log in /tmp/warm/*.txt; do
    echo "--- $log"
    grep -E "^\| rknet|^\| euler|Error|^rc " "$log" | tail -4
done >"$OUT/1-warm.txt"
cat "$OUT/1-warm.txt"

run 120 2-profile-$first_size.txt python3 profile_step.py --device "$DEVICE" --batch-size "$first_size" \
    ${QUICK:+--warmup 1 --steps 1}
for size in ${SIZES//,/ }; do
    run 150 3-throughput-$size.txt python3 throughput.py --device "$DEVICE" --batch-sizes "$size" \
        --rounds "$rounds" --only "$standard$graphs" "${small[@]}"
done
if [[ -n $graphs ]]; then
    run 60 4-graph.txt python3 graphed_step.py
    run 90 4-graph.txt python3 profile_step.py --device "$DEVICE" --step graph \
        --batch-size "$first_size"
fi
if ! grep -q "^rc [^0]" /tmp/warm/rknet-fast-max-autotune-*.txt; then
    run 150 5-max-autotune.txt python3 throughput.py --device "$DEVICE" --batch-sizes "$SIZES" \
        --rounds "$rounds" --only rknet-fast,rknet-fast-max-autotune --no-equality "${small[@]}"
fi
run 90 6-profile-$last_size.txt python3 profile_step.py --device "$DEVICE" --batch-size "$last_size" \
    ${QUICK:+--warmup 1 --steps 1}
nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv >>"$OUT/0-env.txt" 2>&1
grep -h -E "^\||ratio|^cuda|^wall|^cpu \(|^graphed" "$OUT"/[2-6]-*.txt
