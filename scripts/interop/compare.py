#!/usr/bin/env python3
"""Compare our `paro eval` / `dflash eval` JSON with the official runtimes' (paroquant_ppl.py / dflash_tau.py).

Our --json output may be the bare report or the envelope {schema, tool, version, command, ok, error?, result, seconds}.
Perplexity must agree within --ppl-tol (relative, default 0.1 %), τ within --tau-tol (relative, default 1 %); τ of ours
is recomputed over the same first n prompts when the official run stopped early (per-prompt τ of both reports).
Prints one line per comparison and a JSON summary line; exit 0 when every comparison given passes, 1 otherwise,
2 when a file is missing or unreadable.
  python3 scripts/interop/compare.py --ours-ppl ours.json --theirs-ppl theirs.json --ours-tau o.json --theirs-tau t.json
"""
from __future__ import annotations

import argparse
import json
import sys


def load(path: str, what: str) -> dict:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        print(f"compare: {what}: cannot read {path}: {e}", file=sys.stderr)
        sys.exit(2)
    # The file may hold log lines around the JSON: take the last line that parses as an object.
    for line in reversed([l for l in text.splitlines() if l.strip()]):
        try:
            v = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(v, dict):
            return unwrap(v, path, what)
    try:
        return unwrap(json.loads(text), path, what)
    except (json.JSONDecodeError, TypeError):
        print(f"compare: {what}: no JSON object in {path}", file=sys.stderr)
        sys.exit(2)


def unwrap(v: dict, path: str, what: str) -> dict:
    if "result" in v and "schema" in v:  # the issue-11 envelope
        if not v.get("ok", True) or not isinstance(v.get("result"), dict):
            print(f"compare: {what}: {path} reports failure: {v.get('error')}", file=sys.stderr)
            sys.exit(2)
        return v["result"]
    return v


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def mean_tau(per_prompt: list[dict], n: int) -> float:
    taus = [p["tau"] for p in per_prompt[:n] if p.get("tau") is not None and p.get("steps", 1) > 0]
    return sum(taus) / len(taus)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ours-ppl")
    p.add_argument("--theirs-ppl")
    p.add_argument("--ours-tau")
    p.add_argument("--theirs-tau")
    p.add_argument("--ppl-tol", type=float, default=1e-3)
    p.add_argument("--tau-tol", type=float, default=1e-2)
    a = p.parse_args(argv)
    summary: dict = {}
    ok = True
    if a.ours_ppl or a.theirs_ppl:
        if not (a.ours_ppl and a.theirs_ppl):
            p.error("--ours-ppl and --theirs-ppl go together")
        o, t = load(a.ours_ppl, "ours (paro eval)"), load(a.theirs_ppl, "official ParoQuant")
        if o.get("windows") != t.get("windows") or o.get("seqLen") != t.get("seqLen"):
            print(f"compare: ppl: different windows (ours {o.get('windows')} x {o.get('seqLen')}, "
                  f"official {t.get('windows')} x {t.get('seqLen')})", file=sys.stderr)
            ok = False
        d = rel(t["ppl"], o["ppl"])
        good = d <= a.ppl_tol
        ok = ok and good
        print(f"interop ppl: paro eval {o['ppl']:.5f}, official ParoQuant runtime {t['ppl']:.5f}, "
              f"difference {100 * d:.4f} % (limit {100 * a.ppl_tol:.2f} %): {'OK' if good else 'FAIL'}")
        summary["ppl"] = {"ours": o["ppl"], "official": t["ppl"], "relDiff": d, "limit": a.ppl_tol, "ok": good,
                          "windows": t.get("windows"), "officialFpPpl": t.get("fpPpl")}
    if a.ours_tau or a.theirs_tau:
        if not (a.ours_tau and a.theirs_tau):
            p.error("--ours-tau and --theirs-tau go together")
        o, t = load(a.ours_tau, "ours (dflash eval)"), load(a.theirs_tau, "official DFlash")
        n = int(t["promptCount"])
        ours_tau = o["tau"]
        if n != o.get("promptCount") and isinstance(o.get("perPrompt"), list) and len(o["perPrompt"]) >= n:
            ours_tau = mean_tau(o["perPrompt"], n)
        elif n != o.get("promptCount"):
            print(f"compare: τ: {n} prompts official, {o.get('promptCount')} ours and no per-prompt figures", file=sys.stderr)
            ok = False
        d = rel(t["tau"], ours_tau)
        good = d <= a.tau_tol
        ok = ok and good
        print(f"interop tau: dflash eval {ours_tau:.4f}, official DFlash {t['tau']:.4f} over {n} prompts "
              f"(pooled {o.get('tauPooled', float('nan')):.4f} / {t['tauPooled']:.4f}, steps {o.get('verifySteps')} / "
              f"{t['verifySteps']}), difference {100 * d:.3f} % (limit {100 * a.tau_tol:.1f} %): {'OK' if good else 'FAIL'}")
        summary["tau"] = {"ours": ours_tau, "official": t["tau"], "relDiff": d, "limit": a.tau_tol, "ok": good, "prompts": n,
                          "oursPooled": o.get("tauPooled"), "officialPooled": t["tauPooled"],
                          "oursSteps": o.get("verifySteps"), "officialSteps": t["verifySteps"]}
    if not summary:
        p.error("nothing to compare")
    summary["ok"] = ok
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
