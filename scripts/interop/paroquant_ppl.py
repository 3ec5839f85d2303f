#!/usr/bin/env python3
"""Perplexity of a `paro quantize` output through the official ParoQuant runtime (issue 11 item 7, direction a).

The model is loaded by z-lab/paroquant's own transformers integration (its HfQuantizer registered under
quant_method "paroquant", which swaps nn.Linear for its RotateQuantizedLinear: JIT-built CUDA rotation kernel +
AutoAWQ's GEMM), from the unmodified sources that scripts/interop/SOURCES.md lists, extracted to .interop/.
This driver only reproduces `paro eval`'s protocol (src/jobs/eval.ts, src/io/datasets.ts, src/model/perplexity.ts):
  tokens = for each document: encode(text, no special tokens) + [eos], concatenated (eos = config eos_token_id[0]);
  window starts 0, L, 2L, ... while start < min(N - L - 1, max_windows * L);
  per window the mean NLL of its L - 1 next-token predictions; ppl = exp(mean over windows).
Prints one JSON line on stdout; progress and errors on stderr; exit 2 on bad input or a missing environment piece.
  python3 scripts/interop/paroquant_ppl.py --model /tmp/q --data val.jsonl [--max-windows 400] [--seq-len 512]
  python3 scripts/interop/paroquant_ppl.py --build-only     # only JIT-build the rotation kernel (cached under ~/.cache)
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
INTEROP = os.path.join(REPO, ".interop")
AWQ_INFO: dict = {}  # which AutoAWQ GEMM module and kernel path ran (goes into the report)


def fail(msg: str, code: int = 2) -> None:
    print(f"paroquant_ppl: error: {msg}", file=sys.stderr)
    sys.exit(code)


def log(msg: str) -> None:
    print(f"paroquant_ppl: {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="a `paro quantize` output folder (config.json with quantization_config, safetensors, tokenizer)")
    p.add_argument("--data", help="evaluation text: .jsonl ({\"text\": ...} per line), .jsonl.gz, .json, .txt (\\f separates documents)")
    p.add_argument("--seq-len", type=int, default=512, help="tokens per window (paro eval default 512)")
    p.add_argument("--max-windows", type=int, default=400, help="at most this many windows (paro eval default 400)")
    p.add_argument("--start-token", type=int, default=0, help="skip this many leading tokens (paro eval --start-token)")
    p.add_argument("--batch", type=int, default=8, help="windows per forward pass")
    p.add_argument("--fp", help="also the perplexity of this FP model folder through plain transformers (fp16), as a sanity line")
    p.add_argument("--interop", default=INTEROP, help="folder holding the extracted official sources (default: <repo>/.interop)")
    p.add_argument("--awq", choices=["source", "installed"], default="source",
                   help="AutoAWQ's GEMM from the extracted published source (default) or from an installed autoawq package")
    p.add_argument("--build-only", action="store_true", help="only build/load the official rotation kernel, then exit")
    a = p.parse_args(argv)
    if not a.build_only and (not a.model or not a.data):
        p.error("--model and --data are required (or --build-only)")
    for k in ("seq_len", "max_windows", "batch"):
        if getattr(a, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be a positive integer")
    if a.seq_len < 2:
        p.error("--seq-len must be at least 2")
    if a.start_token < 0:
        p.error("--start-token must be non-negative")
    return a


def check_inputs(a: argparse.Namespace) -> dict:
    """Cheap checks before torch is imported: folders, files, quantization_config."""
    if not os.path.isdir(a.model):
        fail(f"{a.model}: not a folder")
    cfg_path = os.path.join(a.model, "config.json")
    if not os.path.isfile(cfg_path):
        fail(f"{cfg_path}: missing")
    with open(cfg_path) as f:
        cfg = json.load(f)
    q = cfg.get("quantization_config")
    if not isinstance(q, dict) or q.get("quant_method") != "paroquant":
        fail(f"{cfg_path}: no quantization_config with quant_method \"paroquant\" (is this a `paro quantize` output?)")
    if not os.path.isfile(os.path.join(a.model, "tokenizer.json")):
        fail(f"{a.model}/tokenizer.json: missing")
    if not os.path.isfile(a.data):
        fail(f"{a.data}: not a file")
    if a.fp and not os.path.isfile(os.path.join(a.fp, "config.json")):
        fail(f"{a.fp}/config.json: missing")
    return cfg


def read_documents(path: str) -> list[str]:
    """The documents of a text file the way io/datasets.ts textDocuments reads them (parquet not supported here)."""
    name = path.lower()
    gz = name.endswith(".gz")
    base = name[:-3] if gz else name
    opener = (lambda: gzip.open(path, "rt", encoding="utf-8")) if gz else (lambda: open(path, encoding="utf-8"))
    docs: list[str] = []
    if base.endswith(".jsonl"):
        with opener() as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                v = json.loads(line)
                if not isinstance(v, dict) or not isinstance(v.get("text"), str):
                    fail(f"{path}: line {i}: expected an object with a string \"text\" field")
                docs.append(v["text"])
    elif base.endswith(".json"):
        with opener() as f:
            v = json.load(f)
        if not isinstance(v, list):
            fail(f"{path}: expected a JSON array of strings or of {{\"text\": string}}")
        for i, item in enumerate(v):
            if isinstance(item, str):
                docs.append(item)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                docs.append(item["text"])
            else:
                fail(f"{path}: item {i}: expected a string or an object with a string \"text\" field")
    elif base.endswith(".txt"):
        with opener() as f:
            docs = [d for d in f.read().split("\f") if d.strip() != ""]
    else:
        fail(f"{path}: unsupported extension here (use .jsonl, .jsonl.gz, .json, .txt)")
    if not docs:
        fail(f"{path}: no documents in the file")
    return docs


def eos_id(cfg: dict, model_dir: str) -> int:
    """config.json eos_token_id (the first of a list), else the tokenizer's eos token: as jobs/eval.ts picks it."""
    e = cfg.get("eos_token_id")
    if isinstance(e, list):
        e = e[0] if e else None
    if isinstance(e, int):
        return e
    tc_path = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.isfile(tc_path):
        with open(tc_path) as f:
            tok = json.load(f).get("eos_token")
        if isinstance(tok, dict):
            tok = tok.get("content")
        if isinstance(tok, str):
            from tokenizers import Tokenizer
            i = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json")).token_to_id(tok)
            if i is not None:
                return i
    fail(f"{model_dir}: cannot tell the end-of-text token (config.json has no eos_token_id)")
    return -1


def token_stream(model_dir: str, docs: list[str], eos: int) -> list[int]:
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    ids: list[int] = []
    for enc in tok.encode_batch(docs, add_special_tokens=False):
        ids.extend(enc.ids)
        ids.append(eos)
    return ids


def window_starts(n: int, seq_len: int, max_windows: int) -> list[int]:
    end = min(n - seq_len - 1, max_windows * seq_len)
    return list(range(0, max(0, end), seq_len))


def setup_official(a: argparse.Namespace) -> None:
    """Put the official sources on sys.path and import the registration module (builds the rotation kernel once)."""
    for sub in ("paroquant",) + (("autoawq",) if a.awq == "source" else ()):
        d = os.path.join(a.interop, sub)
        if not os.path.isdir(d):
            fail(f"{d}: missing; extract the sources listed in scripts/interop/SOURCES.md")
        sys.path.insert(0, d)
    # AutoAWQ's package initializer (awq/__init__.py, awq/modules/linear/__init__.py) imports its quantization model
    # zoo and every kernel flavour; only the three GEMM modules are extracted, so `awq` loads as a namespace package.
    t = time.time()
    try:
        import paroquant.inference.backends.transformers.quantizer  # noqa: F401  (registers "paroquant")
    except Exception as e:  # a missing nvcc/ninja or package shows here; name it and stop
        fail(f"the official ParoQuant runtime did not import: {type(e).__name__}: {e}")
    log(f"official runtime imported (rotation kernel built or loaded) in {time.time() - t:.1f}s")
    import awq.modules.linear.gemm as gemm  # already imported by paroquant's modules.py; which copy, which kernel
    kernel = "awq_ext" if gemm.awq_ext is not None else "triton" if gemm.TRITON_AVAILABLE else "naive"
    where = os.path.abspath(gemm.__file__)
    # An installed regular `awq` package would shadow the extracted namespace one: say so rather than run it unawares.
    if a.awq == "source" and not where.startswith(os.path.abspath(a.interop) + os.sep):
        fail(f"AutoAWQ's GEMM came from {where}, not from {a.interop}/autoawq (an installed autoawq shadows it; "
             "pass --awq installed to use that one)")
    log(f"AutoAWQ GEMM: {where} ({kernel} path)")
    AWQ_INFO.update(awqGemm=where, awqKernel=kernel)


def main(argv: list[str]) -> None:
    a = parse_args(argv)
    cfg = None if a.build_only else check_inputs(a)
    try:
        import torch
    except ImportError:
        fail("PyTorch is not installed in this python (run on the GPU machine)")
    if not torch.cuda.is_available():
        fail("CUDA is not available (the official ParoQuant runtime needs a GPU)")
    setup_official(a)
    if a.build_only:
        print(json.dumps({"built": True}))
        return
    assert cfg is not None
    from transformers import AutoModelForCausalLM

    t0 = time.time()
    docs = read_documents(a.data)
    ids = token_stream(a.model, docs, eos_id(cfg, a.model))[a.start_token:]
    starts = window_starts(len(ids), a.seq_len, a.max_windows)
    if not starts:
        fail(f"{a.data}: too little text for one window: {len(ids)} tokens, need more than {a.seq_len + 1}")
    log(f"{len(ids)} tokens, {len(starts)} windows of {a.seq_len} ({time.time() - t0:.1f}s)")
    tokens = torch.tensor(ids, dtype=torch.long)

    def load(path: str, quantized: bool):
        t = time.time()
        # As paroquant's own loader (inference/backends/transformers/generator.py) does: fp16, sdpa, on cuda.
        model, info = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.float16, attn_implementation="sdpa", device_map="cuda", output_loading_info=True)
        model.eval()
        bad = {k: sorted(v) for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
        # The tied LM head is written by no one (it is the embedding): not a failure.
        if bad.get("missing_keys") and getattr(model.config, "tie_word_embeddings", False):
            bad["missing_keys"] = [k for k in bad["missing_keys"] if k != "lm_head.weight"]
        bad = {k: v for k, v in bad.items() if v}
        if bad:
            fail(f"{path}: the official loader reported {json.dumps(bad)[:2000]}")
        n_q = sum(1 for m in model.modules() if type(m).__name__ == "RotateQuantizedLinear")
        if quantized and n_q == 0:
            fail(f"{path}: no linear was replaced by RotateQuantizedLinear (the paroquant quantizer did not run)")
        log(f"loaded {path} in {time.time() - t:.1f}s ({n_q} RotateQuantizedLinear)")
        return model, n_q

    @torch.no_grad()
    def ppl_of(model) -> tuple[float, float, float]:
        t = time.time()
        nll: list[float] = []
        L = a.seq_len
        for b0 in range(0, len(starts), a.batch):
            batch = torch.stack([tokens[s:s + L] for s in starts[b0:b0 + a.batch]]).cuda()
            logits = model(input_ids=batch, use_cache=False).logits[:, :-1, :].float()
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="none").view(batch.shape[0], L - 1)
            nll.extend(loss.double().mean(dim=1).tolist())  # per-window mean, as src/model/perplexity.ts
        mean = sum(nll) / len(nll)
        if not math.isfinite(mean):
            fail("the perplexity is not finite (the model produced NaN/Inf)")
        torch.cuda.synchronize()
        return math.exp(mean), mean, time.time() - t

    model, n_q = load(a.model, True)
    ppl, mean_nll, secs = ppl_of(model)
    out = {
        "tool": "paroquant-official", "runtime": "z-lab/paroquant transformers integration (RotateQuantizedLinear)",
        "model": a.model, "data": a.data, "ppl": ppl, "meanNll": mean_nll, "windows": len(starts), "seqLen": a.seq_len,
        "dataTokens": len(ids), "quantizedLinears": n_q, "quantization_config": cfg.get("quantization_config"),
        "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
        "transformers": __import__("transformers").__version__, "evalSeconds": round(secs, 2), **AWQ_INFO,
    }
    del model
    torch.cuda.empty_cache()
    if a.fp:
        fp_model, _ = load(a.fp, False)
        out["fpPpl"], _, _ = ppl_of(fp_model)
    out["seconds"] = round(time.time() - t0, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
