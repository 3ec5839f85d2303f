#!/bin/bash
# One GPU session (run from the repository root on the GPU machine after `node scripts/gpu-bundle.mjs` here and
# copying the fixtures to .gpu/fixtures): unpack Node, build the addon, then each step with its own time limit;
# a failing step does not stop the others. Logs and JSON reports go to $OUT.
#   STEPS="bench eval quantize" bash scripts/gpu-session.sh
# GPU_DIR picks another bundle folder (default .gpu); BUDGET (seconds) caps the whole session: each step's time
# limit is cut to what is left. A background sampler records device memory in use and the node processes' RSS
# every second; each step's peaks go to $OUT/peaks.txt.
# Real size (issue 10, docs/scale.md; run 8 of docs/gpu-validation.md):
#   COMPACT=1 BUDGET=450 BENCH_ARGS="--windows-70b 256" STEPS="bench synth-8b quantize-8b eval-8b" bash scripts/gpu-session.sh
# (quantize-8b needed ~9.5 min at 1 + 1 epochs in run 8: give it its own session, or EPOCHS_8B / SAMPLES_8B less.)
# Interop (issue 11 item 7, docs/gpu-validation.md): carry .interop/ too; after dflash-train if its drafter is wanted:
#   STEPS="dflash-train interop" bash scripts/gpu-session.sh
set -u
OUT=${OUT:-/tmp/paro-gpu-out}; mkdir -p "$OUT"  # the device tool sets $OUT; keep to few files (8 come back)
G=${GPU_DIR:-.gpu}
BUDGET=${BUDGET:-100000}
if [ "${SKIP_BUILD:-0}" != 1 ]; then # SKIP_BUILD=1: a cpu rehearsal of the steps with this machine's node (DEVICE=cpu)
xz -dc $G/node.xz > /tmp/node && chmod +x /tmp/node || exit 3
mkdir -p /tmp/nodebin && ln -sf /tmp/node /tmp/nodebin/node && export PATH=/tmp/nodebin:$PATH
if [ -z "$(command -v nvcc)" ] && [ -x /usr/local/cuda/bin/nvcc ]; then export CUDA_HOME=/usr/local/cuda PATH=$PATH:/usr/local/cuda/bin; fi
{ date -u; nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv; nproc; } > "$OUT/env.txt" 2>&1
SECONDS=0
node $G/native/build.mjs --strict --force > "$OUT/build.txt" 2>&1 || { echo "addon build failed"; tail -20 "$OUT/build.txt"; exit 4; }
echo "addon built in ${SECONDS}s"
fi
export PARO_TFJS_WASM_DIR=$PWD/$G/wasm PARO_CUDA_ADDON=$PWD/$G/native/build/paro_cuda.node
F=$G/fixtures
M=examples/tiny-qwen3
CLI="node $G/cli.mjs"
SAMPLES=/tmp/paro-samples.txt
( while :; do
    g=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)
    r=$(ps -C node -o rss= 2>/dev/null | awk '{s+=$1} END {print s+0}')
    echo "$SECONDS ${g:-0} $r"; sleep 1
  done > $SAMPLES ) &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null' EXIT
peaks() { # name since: max device MiB and RSS KiB sampled since that second
  awk -v s="$2" -v n="$1" '$1 >= s { if ($2 > g) g = $2; if ($3 > r) r = $3 } END { printf "%s: peak device memory %d MiB, peak node RSS %.2f GiB\n", n, g, r / 1048576 }' $SAMPLES | tee -a "$OUT/peaks.txt"
}
step() { # name timeout command...  (stdout → $OUT/name.json, stderr → $OUT/name.log)
  local name=$1 t=$2; shift 2
  local left=$((BUDGET - SECONDS))
  [ $left -lt 10 ] && { echo "step $name: skipped (session budget spent)"; return; }
  [ $t -gt $left ] && t=$left
  local s0=$SECONDS T0=$(( ${EPOCHREALTIME/./} / 100000 ))
  # stderr lines stamped with seconds since the step began (phases: hashing/loading until "block 1/…", blocks, writing)
  timeout "$t" "$@" > "$OUT/$name.json" 2> >(while IFS= read -r l; do printf '%6.1f %s\n' "$(( ${EPOCHREALTIME/./} / 100000 - T0 ))e-1" "$l"; done > "$OUT/$name.log"); local rc=$?
  sleep 0.5 # let the stamping loop drain
  echo "step $name: rc=$rc $((SECONDS - s0))s (limit ${t}s)"; [ $rc -eq 0 ] || tail -5 "$OUT/$name.log"
  peaks "$name" "$s0"
}
TIMEV=$(command -v /usr/bin/time >/dev/null && echo "/usr/bin/time -v" || echo "")
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
# checkSelection name groups [gpu-check args...]: one selection of gpu-check groups, each group in its own process
checkSelection() { local name=$1 groups=$2; shift 2; step "$name" 300 node $G/gpu-check.mjs --isolate --parallel --no-time --groups "$groups" "$@"; }
BENCH_ARGS=${BENCH_ARGS:-}
DFLASH_8B_ARGS=${DFLASH_8B_ARGS:-}
for s in ${STEPS:-bench eval quantize quantize-f32 w3}; do
  case $s in
    check) step check 300 node $G/gpu-check.mjs --isolate --parallel --no-time ;;
    collective) # NCCL at world size 1 (issue 12 item 5): the machine's libnccl.so.2 through our addon
      step collective 120 node $G/gpu-check.mjs --group collective --no-time ;;
    check-some) # chosen groups only: CHECK_GROUPS=attention,norm CHECK_ARGS="--only givens"
      checkSelection check-some "${CHECK_GROUPS:-attention}" ${CHECK_ARGS:-} ;;
    check-more) # a second selection in the same session: CHECK2_GROUPS=rope,norm CHECK2_ARGS=...
      checkSelection check-more "${CHECK2_GROUPS:-norm}" ${CHECK2_ARGS:-} ;;
    check-third) # a third selection: CHECK3_GROUPS, CHECK3_ARGS
      checkSelection check-third "${CHECK3_GROUPS:-optim}" ${CHECK3_ARGS:-} ;;
    check-attn) # the attention group alone (every kernel version on every tensor-core case)
      step check-attn 300 node $G/gpu-check.mjs --isolate --no-time --groups attention ;;
    check-givens) # the Givens cases of the paroquant group (both kernel versions), without the long fused-transform ones
      step check-givens 200 node $G/gpu-check.mjs --group paroquant --only "paroquant givens" --no-time ;;
    wgprobe) # the shared-memory descriptor and register layouts native/src/wgmma.cuh assumes, on this device (sm_90a)
      step wgprobe 120 bash -c "nvcc -std=c++17 -arch=sm_90a -o /tmp/wgmma-probe $G/native/tools/wgmma-probe.cu && /tmp/wgmma-probe" ;;
    race) # compute-sanitizer racecheck on the tiny attention cases (every kernel version): barriers the emulation cannot see
      CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
      step race 120 $CS --tool racecheck --print-limit 10 node $G/gpu-check.mjs --no-time --quick --group attention --only tiny ;;
    kbench) # the kernel timing rows of gpu-check (GEMM peak, attention and Givens versions side by side, ...)
      step kbench 200 node $G/gpu-check.mjs --bench --no-check ;;
    ncu) # hardware counters (Nsight Compute) of the block step's slow kernels, scripts/kernel-probe.ts; the second
      # launch of each kernel; PROBE_ARGS="--only attention|givens|transform"
      step ncu 300 $NCU --clock-control none --target-processes all --kernel-id ::regex:.:2 --section SpeedOfLight \
        --section WarpStateStats --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
        --section SchedulerStats --section InstructionStats node $G/kernel-probe.mjs ${PROBE_ARGS:-} ;;
    ncu-stalls) # where the warps of the slow kernels wait: Nsight Compute's warp-state breakdown (stall reasons per
      # issued instruction), the instruction mix and the top stall locations (source lines: the addon has -lineinfo); STALL_KERNELS: a regex of kernel names, PROBE_ARGS as for ncu
      # (the Gram backward's kernels: STALL_KERNELS="paroMinMaxRowsKernel|groupGramKernel|paroScaleGradKernel" PROBE_ARGS="--only transform")
      step ncu-stalls 300 $NCU --clock-control none --target-processes all --kernel-id "::regex:^(${STALL_KERNELS:-attnFwdTma|attnBwdDqTma|attnBwdDqWg|attnBwdDkvTma})\$:2" \
        --section WarpStateStats --section InstructionStats --section SourceCounters --print-details all \
        node $G/kernel-probe.mjs ${PROBE_ARGS:-} ;;
    bench-fused) # the block epoch with the fused ParoQuant transform off (PARO_FUSED_TRANSFORM=0: the composition), for the same-session ratio
      PARO_FUSED_TRANSFORM=0 step bench-fused 240 node $G/bench-gpu.mjs --json --no-70b --no-fused --no-profile ;;
    bench) step bench 240 node $G/bench-gpu.mjs --json $BENCH_ARGS ;;
    synth-8b) # a random-weight Qwen3-8B (36 layers, 16.4 GB in 5 shards) on this machine's disk
      step synth-8b 240 node $G/synth-checkpoint.mjs --arch ${SYNTH_ARCH:-qwen3-8b} --out /tmp/q8 --force --json ;;
    quantize-8b) # the quick calibration size at real shape, reduced epochs; /usr/bin/time -v for the peak RSS
      step quantize-8b 580 $TIMEV $CLI paro quantize /tmp/q8 --out /tmp/q8-paro --calib $F/train.jsonl --samples ${SAMPLES_8B:-128} --seq-len ${SEQ_8B:-2048} \
        --val-samples 8 --epochs ${EPOCHS_8B:-1,1} --device ${DEVICE:-cuda} --force --json
      ls -la /tmp/q8-paro >> "$OUT/quantize-8b.log" 2>&1 ;;
    dflash-8b) # issue 10 item 6 on synth-8b's /tmp/q8: generate-data vs transformers generate (python), train-drafter, eval
      step dflash-8b 300 node $G/bench-dflash-8b.mjs --target ${DFLASH_8B_TARGET:-/tmp/q8} --device ${DEVICE:-cuda} --python ${PYTHON:-python3} --json $DFLASH_8B_ARGS ;;
    eval-8b)
      step eval-8b 180 $TIMEV $CLI paro eval /tmp/q8-paro --data $F/val.jsonl --seq-len ${SEQ_8B:-2048} --max-windows 64 --device ${DEVICE:-cuda} --json ;;
    eval) step eval 120 $CLI paro eval $M --data $F/val.jsonl --device cuda --json ;;
    quantize)
      step quantize 180 $CLI paro quantize $M --out /tmp/q-bf16 --calib $F/train.jsonl --device cuda --force --json
      step quantize-eval 120 $CLI paro eval /tmp/q-bf16 --data $F/val.jsonl --device cuda --json ;;
    quantize-recompute) # the fixture protocol with the transform's recompute backward (PARO_GRAM_BACKWARD=0): quality A/B with quantize
      PARO_GRAM_BACKWARD=0 step quantize-recompute 180 $CLI paro quantize $M --out /tmp/q-rec --calib $F/train.jsonl --device cuda --force --json
      step quantize-recompute-eval 120 $CLI paro eval /tmp/q-rec --data $F/val.jsonl --device cuda --json ;;
    quantize-f32)
      step quantize-f32 180 $CLI paro quantize $M --out /tmp/q-f32 --calib $F/train.jsonl --device cuda --compute-dtype f32 --force --json
      step quantize-f32-eval 120 $CLI paro eval /tmp/q-f32 --data $F/val.jsonl --device cuda --json ;;
    w3)
      step w3 180 $CLI paro quantize $M --out /tmp/q-w3 --calib $F/train.jsonl --device cuda --bits 3 --force --json
      step w3-eval 120 $CLI paro eval /tmp/q-w3 --data $F/val.jsonl --device cuda --json ;;
    stream) # calibration activations streamed from page-locked host memory instead of device-resident
      step stream 180 $CLI paro quantize $M --out /tmp/q-stream --calib $F/train.jsonl --device cuda --activations host --force --json ;;
    dflash-eval) # the official drafter (copied to $F/official-dflash) against REFERENCE.md's τ 2.524 / pooled 1.536
      step dflash-eval 240 $CLI dflash eval --target $M --drafter $F/official-dflash --prompts $F/val-prompts.jsonl \
        --max-new-tokens 128 --temperature 0 --ignore-eos --expect $F/val-prompts-greedy.json --device cuda --json ;;
    dflash-eval-f32) # the same with FP32 target GEMMs: PyTorch's FP32 protocol on the GPU
      step dflash-eval-f32 240 $CLI dflash eval --target $M --drafter $F/official-dflash --prompts $F/val-prompts.jsonl \
        --max-new-tokens 128 --temperature 0 --ignore-eos --expect $F/val-prompts-greedy.json --weight-dtype f32 --device cuda --json ;;
    dflash-train) # the issue's training command on the GPU, data from `dflash generate-data` copied to $F/train-gen.jsonl
      step dflash-train 300 $CLI dflash train-drafter --target $M --data $F/train-gen.jsonl --out /tmp/d-cuda --block-size 8 \
        --mask-token 1 --device cuda --force --json
      step dflash-train-eval 240 $CLI dflash eval --target $M --drafter /tmp/d-cuda --prompts $F/val-prompts.jsonl \
        --max-new-tokens 128 --temperature 0 --ignore-eos --device cuda --json ;;
    interop) # issue 11 item 7: the official runtimes (carry .interop/, scripts/interop/SOURCES.md) load our outputs
      step interop-quantize 180 $CLI paro quantize $M --out /tmp/q-interop --calib $F/train.jsonl --samples 32 --val-samples 8 \
        --epochs 2,2 --device cuda --force --json
      ID=${INTEROP_DRAFTER:-/tmp/d-cuda}; [ -f $ID/config.json ] || ID=$F/official-dflash  # dflash-train's drafter if it ran
      step interop 480 env CLI="$CLI" INTEROP_OUT=/tmp/paro-interop bash scripts/interop/run-on-gpu.sh --paro /tmp/q-interop \
        --fp $M --data $F/val.jsonl --target $M --drafter $ID --prompts $F/val-prompts.jsonl --expect $F/val-prompts-greedy.json ;;
    dflash-sweep) # ablations of train-drafter settings on the GPU (seconds each); one summary line per setting
      while IFS= read -r args; do
        [ -z "$args" ] && continue
        s0=$SECONDS
        $CLI dflash train-drafter --target $M --data $F/train-gen.jsonl --out /tmp/d-sweep --block-size 8 --mask-token 1 \
          --device cuda --force --json $args > /tmp/sweep-train.json 2> /tmp/sweep-train.log || { echo "sweep [$args]: train failed"; tail -3 /tmp/sweep-train.log; continue; }
        $CLI dflash eval --target $M --drafter /tmp/d-sweep --prompts $F/val-prompts.jsonl --max-new-tokens 128 --temperature 0 \
          --ignore-eos --no-baseline --device cuda --json > /tmp/sweep-eval.json 2> /tmp/sweep-eval.log || { echo "sweep [$args]: eval failed"; continue; }
        SWEEP_ARGS="$args" node -e 'const t=require("/tmp/sweep-train.json"), e=require("/tmp/sweep-eval.json"); console.log(JSON.stringify({args: process.env.SWEEP_ARGS, tau: +e.tau.toFixed(4), pooled: +e.tauPooled.toFixed(4), steps: e.verifySteps, loss: +t.finalLoss.toFixed(4), trainSeconds: +t.seconds.train.toFixed(1), totalSteps: t.totalSteps}))' | tee -a "$OUT/dflash-sweep.jsonl"
        echo "  ($((SECONDS - s0)) s)"
      done < "${SWEEP_FILE:-scripts/dflash-sweep.txt}" ;;
    *) echo "unknown step $s" ;;
  esac
done
echo "total ${SECONDS}s"
if [ "${COMPACT:-0}" = 1 ]; then # the device tool returns at most 8 files: fold the small ones into session.txt
  for f in env.txt build.txt peaks.txt synth-8b.json; do [ -f "$OUT/$f" ] && { echo "== $f"; cat "$OUT/$f"; rm "$OUT/$f"; }; done >> "$OUT/session.txt"
  # Still more than 8 files (the caller's tee target counts too): fold the smallest into session.txt, one by one.
  while [ "$(find "$OUT" -maxdepth 1 -type f | wc -l)" -gt 7 ]; do
    f=$(find "$OUT" -maxdepth 1 -type f ! -name session.txt ! -name 'session-*' -printf '%s %f\n' | sort -n | head -1 | cut -d' ' -f2)
    [ -z "$f" ] && break
    { echo "== $f"; cat "$OUT/$f"; } >> "$OUT/session.txt"; rm "$OUT/$f"
  done
fi
