#!/bin/bash
# Interop in the other direction (issue 11 item 7), on the GPU machine from the repository root, with .interop/
# (the official sources, scripts/interop/SOURCES.md) present (carry it) and our bundled CLI in $CLI:
#   (a) the official ParoQuant runtime loads a `paro quantize` output: perplexity vs our `paro eval` (≤ 0.1 %);
#   (b) the official DFlash code loads a drafter: τ vs our `dflash eval` (≤ 1 %), both FP32 (--weight-dtype f32).
# Usage:
#   CLI="node .gpu/cli.mjs" bash scripts/interop/run-on-gpu.sh --paro Q --fp M --data val.jsonl \
#       --target M --drafter D --prompts val-prompts.jsonl [--expect greedy.json] [--max-windows 400] [--max-prompts 40]
#       [--ours-ppl ours.json] [--ours-tau ours.json]     (our reports computed earlier instead of here)
#   Either half may be left out (no --paro: no (a); no --drafter: no (b)).
# Each official run has a hard `timeout` (OFFICIAL_LIMIT, default 90 s); building the official rotation kernel
# (nvcc, once per machine, cached in ~/.cache/paroquant) has its own (BUILD_LIMIT, default 240 s).
# Files: the reports go to $INTEROP_OUT (default $OUT, else /tmp/paro-interop): ours-ppl.json, official-ppl.json,
# ours-tau.json, official-tau.json; the comparison lines and a JSON summary on stdout; logs on stderr.
# Exit 0 when every comparison made passes; 1 when one fails; 2 on a usage error; 3 when a run fails.
set -u
PARO= FP= DATA= TARGET= DRAFTER= PROMPTS= EXPECT= OURS_PPL= OURS_TAU= WINDOWS=400 PROMPTS_N=40
while [ $# -gt 0 ]; do
  case $1 in
    --paro) PARO=${2-} ;; --fp) FP=${2-} ;; --data) DATA=${2-} ;; --target) TARGET=${2-} ;; --drafter) DRAFTER=${2-} ;;
    --prompts) PROMPTS=${2-} ;; --expect) EXPECT=${2-} ;; --max-windows) WINDOWS=${2-} ;; --max-prompts) PROMPTS_N=${2-} ;;
    --ours-ppl) OURS_PPL=${2-} ;; --ours-tau) OURS_TAU=${2-} ;;
    *) echo "run-on-gpu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2 || { echo "run-on-gpu.sh: $1 needs a value" >&2; exit 2; }
done
[ -n "$PARO" ] && [ -z "$DATA" ] && { echo "run-on-gpu.sh: --paro needs --data" >&2; exit 2; }
[ -n "$DRAFTER" ] && { [ -z "$TARGET" ] || [ -z "$PROMPTS" ]; } && { echo "run-on-gpu.sh: --drafter needs --target and --prompts" >&2; exit 2; }
[ -z "$PARO$DRAFTER" ] && { echo "run-on-gpu.sh: nothing to do (give --paro and/or --drafter)" >&2; exit 2; }
[ -d .interop/paroquant ] && [ -d .interop/dflash ] || { echo "run-on-gpu.sh: .interop/ is missing (see scripts/interop/SOURCES.md; carry it)" >&2; exit 2; }
CLI=${CLI:-node .gpu/cli.mjs}
PY=${PYTHON:-python3}
W=${INTEROP_OUT:-${OUT:-/tmp/paro-interop}}; mkdir -p "$W"
LIMIT=${OFFICIAL_LIMIT:-90}
HERE=scripts/interop
# torch.utils.cpp_extension needs ninja and nvcc: the python's own bin folder first, then CUDA's.
export PATH="$(dirname "$(command -v $PY)"):$PATH"
if [ -z "$(command -v nvcc)" ] && [ -x /usr/local/cuda/bin/nvcc ]; then export CUDA_HOME=/usr/local/cuda PATH=$PATH:/usr/local/cuda/bin; fi
export PYTHONUNBUFFERED=1
CMP=()
FAILED=0
t() { local s=$SECONDS; "$@"; local rc=$?; echo "  [$((SECONDS - s)) s, rc $rc] $*" >&2; return $rc; }

if [ -n "$PARO" ]; then
  if [ -z "$OURS_PPL" ]; then
    OURS_PPL=$W/ours-ppl.json
    t $CLI paro eval "$PARO" --data "$DATA" --max-windows "$WINDOWS" --compute-dtype f32 --device "${DEVICE:-cuda}" --json > "$OURS_PPL" || FAILED=1
  fi
  # Only the architecture of this card: one nvcc pass instead of torch's whole default list.
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$($PY -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())' 2>/dev/null)}
  export MAX_JOBS=${MAX_JOBS:-$(nproc)}
  if t timeout "${BUILD_LIMIT:-240}" $PY $HERE/paroquant_ppl.py --build-only >&2 &&
     t timeout "$LIMIT" $PY $HERE/paroquant_ppl.py --model "$PARO" --data "$DATA" --max-windows "$WINDOWS" ${FP:+--fp "$FP"} > "$W/official-ppl.json"; then
    CMP+=(--ours-ppl "$OURS_PPL" --theirs-ppl "$W/official-ppl.json")
  else
    echo "run-on-gpu.sh: the official ParoQuant run failed (log above)" >&2; FAILED=1
  fi
fi

if [ -n "$DRAFTER" ]; then
  if [ -z "$OURS_TAU" ]; then
    OURS_TAU=$W/ours-tau.json
    t $CLI dflash eval --target "$TARGET" --drafter "$DRAFTER" --prompts "$PROMPTS" --max-new-tokens 128 --temperature 0 \
      --ignore-eos --weight-dtype f32 --no-baseline --max-prompts "$PROMPTS_N" ${EXPECT:+--expect "$EXPECT"} --device "${DEVICE:-cuda}" --json > "$OURS_TAU" || FAILED=1
  fi
  # --time-limit: stop between prompts well inside the hard limit; the comparison then uses the same first prompts.
  if t timeout "$LIMIT" $PY $HERE/dflash_tau.py --target "$TARGET" --drafter "$DRAFTER" --prompts "$PROMPTS" \
       --max-new-tokens 128 --ignore-eos --dtype float32 --max-prompts "$PROMPTS_N" ${EXPECT:+--expect "$EXPECT"} \
       --time-limit $((LIMIT * 2 / 3)) > "$W/official-tau.json"; then
    CMP+=(--ours-tau "$OURS_TAU" --theirs-tau "$W/official-tau.json")
  else
    echo "run-on-gpu.sh: the official DFlash run failed (log above)" >&2; FAILED=1
  fi
fi

for f in ours-ppl official-ppl ours-tau official-tau; do # the reports into the log too (few files come back)
  [ -s "$W/$f.json" ] && { echo "== $f.json"; head -c 20000 "$W/$f.json"; echo; } >&2
done
[ ${#CMP[@]} -eq 0 ] && exit 3
$PY $HERE/compare.py "${CMP[@]}"; rc=$?
[ $FAILED -ne 0 ] && exit 3
exit $rc
