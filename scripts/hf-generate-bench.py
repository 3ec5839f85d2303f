#!/usr/bin/env python3
"""transformers' generate on a checkpoint, for the same-run comparison of bench/dflash-8b.ts (issue 10 item 6).

Loads the model in bf16 on the GPU, decodes a batch of equal-length token-id prompts greedily for exactly
--new-tokens tokens (no end-of-sequence stop), once briefly to warm up, then timed. Progress goes to stderr; the
last stdout line is one JSON object: {"ok": true, "tokensPerSecond": ..., "generated": [[ids...], ...], ...} or
{"ok": false, "error": "..."}. The caller (bench/dflash-8b.ts) kills it after its time limit.

    python3 scripts/hf-generate-bench.py --model /tmp/q8 --prompts prompts.json --new-tokens 128
prompts.json: {"prompts": [[id, ...], ...]} (every prompt of the same length, so no padding is involved).
"""
import argparse
import json
import sys
import time
import traceback

T0 = time.perf_counter()


def log(msg):
    print(f"[hf {time.perf_counter() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def load_model(model_dir, torch, auto_model):
    """bf16 on the GPU as the issue asks; without accelerate device_map may be refused: then load and move."""
    try:
        return auto_model.from_pretrained(model_dir, dtype=torch.bfloat16, device_map="cuda"), 'device_map="cuda"'
    except Exception as e:  # noqa: BLE001 - whatever refused device_map: one more try the other way
        log(f"from_pretrained(device_map='cuda') failed ({type(e).__name__}: {e}); loading on the host and moving")
        return auto_model.from_pretrained(model_dir, dtype=torch.bfloat16).to("cuda"), ".to('cuda')"


def run(args):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    import_s = time.perf_counter() - T0
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, imported")
    if not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device")
    with open(args.prompts, encoding="utf-8") as f:
        prompts = json.load(f)["prompts"]
    lengths = {len(p) for p in prompts}
    if len(prompts) == 0 or len(lengths) != 1:
        raise ValueError(f"{args.prompts}: expected a non-empty list of equal-length prompts, got lengths {sorted(lengths)}")
    prompt_len = lengths.pop()

    t = time.perf_counter()
    model, how = load_model(args.model, torch, AutoModelForCausalLM)
    model.eval()
    torch.cuda.synchronize()
    load_s = time.perf_counter() - t
    log(f"loaded {args.model} with {how} in {load_s:.1f} s")

    ids = torch.tensor(prompts, dtype=torch.long, device="cuda")
    mask = torch.ones_like(ids)
    # No end-of-sequence stop: every prompt gets exactly new_tokens tokens, as our side decodes them. First without
    # any EOS id; should this transformers refuse that, with the checkpoint's EOS held off by min_new_tokens.
    eos = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = None
    mode = {"eos_token_id": None}

    def generate(n):
        with torch.inference_mode():
            if "min" in mode:
                return model.generate(ids, attention_mask=mask, do_sample=False, pad_token_id=0, eos_token_id=eos,
                                      max_new_tokens=n, min_new_tokens=n)
            return model.generate(ids, attention_mask=mask, do_sample=False, pad_token_id=0, eos_token_id=None,
                                  max_new_tokens=n)

    t = time.perf_counter()
    try:
        generate(args.warmup_tokens)
    except Exception as e:  # noqa: BLE001 - any refusal of the no-EOS form: try the other one
        log(f"generate without an EOS id failed ({type(e).__name__}: {e}); using min_new_tokens instead")
        model.generation_config.eos_token_id = eos
        mode["min"] = True
        generate(args.warmup_tokens)
    torch.cuda.synchronize()
    log(f"warm-up ({args.warmup_tokens} tokens) in {time.perf_counter() - t:.1f} s")
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    out = generate(args.new_tokens)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    new = out[:, prompt_len:]
    tokens = new.shape[0] * new.shape[1]
    log(f"generate: {new.shape[0]} x {new.shape[1]} tokens in {seconds:.2f} s ({tokens / seconds:.1f} tokens/s)")
    return {
        "ok": True,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(),
        "load": how,
        "noEos": "min_new_tokens" if "min" in mode else "eos_token_id=None",
        "attnImplementation": getattr(model.config, "_attn_implementation", None),
        "batch": len(prompts),
        "promptLen": prompt_len,
        "newTokens": int(new.shape[1]),
        "tokens": int(tokens),
        "seconds": round(seconds, 3),
        "tokensPerSecond": round(tokens / seconds, 1),
        "importSeconds": round(import_s, 1),
        "loadSeconds": round(load_s, 1),
        "peakMemoryBytes": int(torch.cuda.max_memory_allocated()),
        "generated": new.tolist(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="checkpoint directory (config.json + safetensors)")
    ap.add_argument("--prompts", required=True, help='JSON file {"prompts": [[ids...], ...]}, equal lengths')
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--warmup-tokens", type=int, default=8)
    args = ap.parse_args()
    try:
        result = run(args)
    except Exception as e:  # the caller wants a JSON line either way
        traceback.print_exc(file=sys.stderr)
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
