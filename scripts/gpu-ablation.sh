#!/bin/bash
# ParoQuant levers on the fixture, on the GPU (run after scripts/gpu-session.sh has unpacked Node and built the addon,
# or with BUILD=1): each configuration quantizes tiny-qwen3 (128 × 512 calibration of train.jsonl) and evaluates the
# result on val.jsonl; one TSV line per configuration in $OUT/ablation.tsv.
# The A/B of the upstream angle gradient (`--angle-gradient upstream`) and the `--krot 0` run were measured at commit
# 5e167a2 (docs/performance.md); both options are gone, so those configurations are no longer in the list.
set -u
OUT=${OUT:-/tmp/paro-gpu-out}; mkdir -p "$OUT"
if [ "${BUILD:-0}" = 1 ]; then
  xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node && mkdir -p /tmp/nodebin && ln -sf /tmp/node /tmp/nodebin/node
  export PATH=/tmp/nodebin:$PATH
  node .gpu/native/build.mjs --strict --force > "$OUT/build.txt" 2>&1 || { tail "$OUT/build.txt"; exit 4; }
fi
export PARO_TFJS_WASM_DIR=$PWD/.gpu/wasm PARO_CUDA_ADDON=$PWD/.gpu/native/build/paro_cuda.node PARO_QUIET=1
F=.gpu/fixtures
printf 'name\targs\tquantize_s\tppl\n' > "$OUT/ablation.tsv"
while IFS='|' read -r name args; do
  [ -z "$name" ] && continue
  s0=$SECONDS
  node .gpu/cli.mjs paro quantize examples/tiny-qwen3 --out /tmp/ab-$name --calib $F/train.jsonl --device cuda --force --json $args > /tmp/ab-$name.json 2> "$OUT/ab-$name.log"
  q=$((SECONDS - s0))
  ppl=$(node .gpu/cli.mjs paro eval /tmp/ab-$name --data $F/val.jsonl --device cuda --json 2>>"$OUT/ab-$name.log" | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{try{console.log(JSON.parse(s).result.ppl.toFixed(4))}catch{console.log('failed')}})")
  printf '%s\t%s\t%s\t%s\n' "$name" "$args" "$q" "$ppl" | tee -a "$OUT/ablation.tsv"
done <<'LIST'
default-bf16|
default-f32|--compute-dtype f32
seed1-f32|--compute-dtype f32 --seed 1
seed2-f32|--compute-dtype f32 --seed 2
e5-f32|--compute-dtype f32 --epochs 5,5
stage1only-f32|--compute-dtype f32 --epochs 10,0
stage2only-f32|--compute-dtype f32 --epochs 0,10
krot4-f32|--compute-dtype f32 --krot 4
e20-f32|--compute-dtype f32 --epochs 20,20
samples256-f32|--compute-dtype f32 --samples 256
g64-f32|--compute-dtype f32 --group-size 64
rtn|--method rtn
LIST
echo "total ${SECONDS}s"
