#!/usr/bin/env python3
"""τ of a `dflash train-drafter` output through the official z-lab DFlash code (issue 11 item 7, direction b).

The drafter is loaded by the official `DFlashDraftModel.from_pretrained` and decoded by the official
`dflash_generate` (dflash/model.py of z-lab/dflash, unmodified, extracted to .interop/ as scripts/interop/SOURCES.md
lists); the target by plain transformers. This driver only reproduces `dflash eval`'s protocol (src/jobs/eval-drafter.ts,
src/dflash/prompts.ts, src/dflash/evaluate.ts):
  prompts: {"prompt": text} lines encoded as raw text with special tokens (no chat template when the tokenizer has
  none or --no-chat-template), else the chat template with the generation prompt; {"messages": [...]} lines always
  through the template;
  greedy (temperature 0), --max-new-tokens, stop at eos unless --ignore-eos;
  τ = mean over prompts of each prompt's mean acceptance length (bonus token counted) = official benchmark.py's
  "Average Acceptance length"; τ pooled = all accepted tokens / all verify steps.
Prints one JSON line on stdout (with per-prompt τ, so a shorter run compares against the same prompts of ours).
  python3 scripts/interop/dflash_tau.py --target M --drafter D --prompts val-prompts.jsonl --ignore-eos [--max-prompts 40]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
INTEROP = os.path.join(REPO, ".interop")


def fail(msg: str, code: int = 2) -> None:
    print(f"dflash_tau: error: {msg}", file=sys.stderr)
    sys.exit(code)


def log(msg: str) -> None:
    print(f"dflash_tau: {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", required=True, help="the target model folder (transformers format)")
    p.add_argument("--drafter", required=True, help="a drafter folder in the z-lab format (config.json + model.safetensors)")
    p.add_argument("--prompts", required=True, help='.jsonl of {"prompt": text} or {"messages": [...]} per line')
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--max-prompts", type=int, help="only the first n prompts")
    p.add_argument("--ignore-eos", action="store_true", help="do not stop at the end-of-text token (dflash eval --ignore-eos)")
    p.add_argument("--no-chat-template", action="store_true", help="raw-text prompts even when the tokenizer has a chat template")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="weights and compute of target and drafter (float32: the FP32 protocol of `dflash eval --weight-dtype f32`)")
    p.add_argument("--attn", default="sdpa", help="attn_implementation for both models (sdpa, eager)")
    p.add_argument("--expect", help='{"generated_ids": [[...], ...]}: count speculative outputs equal to these ids')
    p.add_argument("--time-limit", type=float, default=0, help="stop after the prompt that passes this many seconds of decoding (0: none)")
    p.add_argument("--interop", default=INTEROP, help="folder holding the extracted official sources (default: <repo>/.interop)")
    a = p.parse_args(argv)
    if a.max_new_tokens < 1 or (a.max_prompts is not None and a.max_prompts < 1):
        p.error("--max-new-tokens and --max-prompts must be positive integers")
    return a


def read_prompts(path: str) -> list[dict]:
    if not os.path.isfile(path):
        fail(f"{path}: not a file")
    out: list[dict] = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            v = json.loads(line)
            if isinstance(v, dict) and isinstance(v.get("prompt"), str):
                out.append({"prompt": v["prompt"]})
            elif isinstance(v, dict) and isinstance(v.get("messages"), list):
                out.append({"messages": v["messages"]})
            else:
                fail(f"{path}: line {i}: expected {{\"prompt\": string}} or {{\"messages\": [...]}}")
    if not out:
        fail(f"{path}: no prompts")
    return out


def check_inputs(a: argparse.Namespace) -> None:
    for d, what in ((a.target, "target"), (a.drafter, "drafter")):
        if not os.path.isfile(os.path.join(d, "config.json")):
            fail(f"{d}/config.json: missing ({what} folder)")
    with open(os.path.join(a.drafter, "config.json")) as f:
        dc = json.load(f)
    if not isinstance(dc.get("dflash_config"), dict) or "block_size" not in dc:
        fail(f"{a.drafter}/config.json: no dflash_config/block_size (not a z-lab format drafter)")
    if not os.path.isfile(os.path.join(a.target, "tokenizer.json")):
        fail(f"{a.target}/tokenizer.json: missing")
    if a.expect and not os.path.isfile(a.expect):
        fail(f"{a.expect}: not a file")


def encode_prompts(a: argparse.Namespace, prompts: list[dict]) -> tuple[list[list[int]], bool]:
    """The ids `dflash eval` feeds the target (dflash/prompts.ts encodePrompt)."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(a.target, "tokenizer.json"))
    tc_path = os.path.join(a.target, "tokenizer_config.json")
    has_template = os.path.isfile(os.path.join(a.target, "chat_template.jinja"))
    if os.path.isfile(tc_path):
        with open(tc_path) as f:
            has_template = has_template or bool(json.load(f).get("chat_template"))
    use_template = has_template and not a.no_chat_template
    hf_tok = None
    if use_template:
        from transformers import AutoTokenizer
        hf_tok = AutoTokenizer.from_pretrained(a.target)
    out: list[list[int]] = []
    for i, p in enumerate(prompts):
        if use_template:
            msgs = p.get("messages") or [{"role": "user", "content": p["prompt"]}]
            text = hf_tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            ids = tok.encode(text, add_special_tokens=False).ids
        else:
            if "messages" in p:
                fail(f"{a.prompts}: prompt {i + 1} is {{\"messages\": ...}} but no chat template is used")
            ids = tok.encode(p["prompt"], add_special_tokens=True).ids
        if not ids:
            fail(f"{a.prompts}: prompt {i + 1} encodes to no tokens")
        out.append(ids)
    return out, use_template


def main(argv: list[str]) -> None:
    a = parse_args(argv)
    check_inputs(a)
    prompts = read_prompts(a.prompts)
    if a.max_prompts is not None:
        prompts = prompts[: a.max_prompts]
    expected = None
    if a.expect:
        with open(a.expect) as f:
            raw = json.load(f)
        expected = raw.get("generated_ids") if isinstance(raw, dict) else raw
        if not isinstance(expected, list) or len(expected) < len(prompts):
            fail(f"{a.expect}: expected {{\"generated_ids\": [[...], ...]}} with at least {len(prompts)} lists")
    try:
        import torch
    except ImportError:
        fail("PyTorch is not installed in this python (run on the GPU machine)")
    if not torch.cuda.is_available():
        fail("CUDA is not available")
    src = os.path.join(a.interop, "dflash")
    if not os.path.isfile(os.path.join(src, "dflash", "model.py")):
        fail(f"{src}/dflash/model.py: missing; extract the sources listed in scripts/interop/SOURCES.md")
    sys.path.insert(0, src)
    try:
        from dflash.model import DFlashDraftModel, dflash_generate
    except Exception as e:
        fail(f"the official DFlash code did not import: {type(e).__name__}: {e}")
    from transformers import AutoModelForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = False  # true f32 GEMMs for the FP32 protocol
    torch.backends.cudnn.allow_tf32 = False
    dtype = getattr(torch, a.dtype)
    ids, templated = encode_prompts(a, prompts)
    t0 = time.time()
    target = AutoModelForCausalLM.from_pretrained(a.target, dtype=dtype, attn_implementation=a.attn).to("cuda").eval()
    draft, info = DFlashDraftModel.from_pretrained(a.drafter, dtype=dtype, attn_implementation=a.attn, output_loading_info=True)
    bad = {k: sorted(v) for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        fail(f"{a.drafter}: the official loader reported {json.dumps(bad)[:2000]}")
    draft = draft.to("cuda").eval()
    log(f"loaded target and drafter in {time.time() - t0:.1f}s (block {draft.block_size}, target layers "
        f"{draft.target_layer_ids}, mask token {draft.mask_token_id})")
    eos = target.config.eos_token_id
    eos_ids = eos if isinstance(eos, list) else ([eos] if eos is not None else [])
    stop = None if a.ignore_eos else (eos_ids or None)

    per_prompt: list[dict] = []
    all_acc: list[int] = []
    t1 = time.time()
    for i, p_ids in enumerate(ids):
        x = torch.tensor([p_ids], dtype=torch.long, device="cuda")
        r = dflash_generate(draft, target=target, input_ids=x, max_new_tokens=a.max_new_tokens, stop_token_ids=stop,
                            temperature=0.0, return_stats=True)
        acc = [int(v) for v in r.acceptance_lengths]
        out_ids = r.output_ids[0, r.num_input_tokens:].tolist()
        rec = {"index": i, "promptTokens": len(p_ids), "outputTokens": len(out_ids), "steps": len(acc),
               "tau": (sum(acc) / len(acc)) if acc else None}
        if expected is not None:
            rec["matchesExpected"] = out_ids == list(expected[i][: a.max_new_tokens])
        per_prompt.append(rec)
        all_acc.extend(acc)
        if a.time_limit and time.time() - t1 > a.time_limit and i + 1 < len(ids):
            log(f"time limit: stopped after {i + 1} of {len(ids)} prompts")
            break
    with_steps = [r["tau"] for r in per_prompt if r["tau"] is not None]
    if not with_steps:
        fail("no verify step ran on any prompt (every output ended at once; try --ignore-eos)")
    block = int(draft.block_size)
    out = {
        "tool": "dflash-official", "runtime": "z-lab/dflash dflash/model.py (DFlashDraftModel + dflash_generate)",
        "target": a.target, "drafter": a.drafter, "prompts": a.prompts, "promptCount": len(per_prompt),
        "templated": templated, "dtype": a.dtype, "attn": a.attn, "maxNewTokens": a.max_new_tokens,
        "tau": sum(with_steps) / len(with_steps), "tauPooled": sum(all_acc) / len(all_acc), "verifySteps": len(all_acc),
        "histogram": [all_acc.count(b) / len(all_acc) for b in range(1, block + 1)],
        "expectedMatches": (sum(1 for r in per_prompt if r.get("matchesExpected")) if expected is not None else None),
        "blockSize": block, "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
        "transformers": __import__("transformers").__version__, "decodeSeconds": round(time.time() - t1, 2),
        "seconds": round(time.time() - t0, 2), "perPrompt": per_prompt,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
