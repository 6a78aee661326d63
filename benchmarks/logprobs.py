"""Peak memory of completion log-probs: chunked (models.logprobs) vs naive full logits.

Vocabulary 151,936 (Qwen2.5-VL's), a random-init lm_head on a small hidden size, forward AND
backward (the training use). Each variant runs in a fresh subprocess; its peak is the rise of
ru_maxrss (the process's resident-memory high-water mark, which sees torch's CPU allocations,
unlike tracemalloc) from just before the computation to just after. Results:
benchmarks/results/logprobs.json and a table on stdout.

    python benchmarks/logprobs.py [--rows 8 --tokens 128 --hidden 64 --chunk 512]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

VOCAB = 151_936
RESULTS = Path(__file__).parent / "results" / "logprobs.json"


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _inputs(rows: int, tokens: int, hidden: int):
    gen = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(hidden, VOCAB, bias=False)
    torch.nn.init.normal_(head.weight, std=0.02, generator=gen)
    h = torch.randn(rows, tokens, hidden, generator=gen, requires_grad=True)
    targets = torch.randint(0, VOCAB, (rows, tokens), generator=gen)
    mask = torch.ones(rows, tokens, dtype=torch.long)
    mask[::2, tokens // 2 :] = 0  # half the rows end early
    return head, h, targets, mask


def _naive(head, h, targets, mask):
    logp_all = torch.log_softmax(head(h).float(), dim=-1)  # [B, T, V]
    logps = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * mask
    entropy = -(logp_all.exp() * logp_all).sum(-1) * mask
    return logps, entropy


def run_variant(variant: str, rows: int, tokens: int, hidden: int, chunk: int, out: str) -> None:
    """Child process: one variant, forward + backward; writes peak rise and results to `out`."""
    from deepvideo_r1.models.logprobs import chunked_token_logprobs

    head, h, targets, mask = _inputs(rows, tokens, hidden)
    before = _maxrss_mb()
    if variant == "naive":
        logps, entropy = _naive(head, h, targets, mask)
    else:
        res = chunked_token_logprobs(head, h, targets, mask, chunk_size=chunk)
        logps, entropy = res.logps, res.entropy
    (logps.sum() + 0.01 * entropy.sum()).backward()
    peak = _maxrss_mb() - before
    torch.save({"peak_mb": peak, "logps": logps.detach(), "grad": h.grad}, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--variant", choices=["naive", "chunked"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        run_variant(args.variant, args.rows, args.tokens, args.hidden, args.chunk, args.out)
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("naive", "chunked"):
            out = f"{tmp}/{variant}.pt"
            cmd = [sys.executable, __file__, "--variant", variant, "--out", out]
            cmd += ["--rows", str(args.rows), "--tokens", str(args.tokens), "--hidden", str(args.hidden)]
            subprocess.run([*cmd, "--chunk", str(args.chunk)], check=True)
            results[variant] = torch.load(out)
    diff = (results["naive"]["logps"] - results["chunked"]["logps"]).abs().max().item()
    grad_diff = (results["naive"]["grad"] - results["chunked"]["grad"]).abs().max().item()
    report = {
        "vocab": VOCAB,
        "rows": args.rows,
        "tokens": args.tokens,
        "hidden": args.hidden,
        "chunk_size": args.chunk,
        "full_logits_mb": args.rows * args.tokens * VOCAB * 4 / 2**20,
        "naive_peak_mb": round(results["naive"]["peak_mb"], 1),
        "chunked_peak_mb": round(results["chunked"]["peak_mb"], 1),
        "max_abs_diff": diff,
        "max_abs_grad_diff": grad_diff,
        "method": "ru_maxrss rise in a fresh subprocess, forward + backward, fp32, CPU",
    }
    report["chunked_over_naive"] = round(report["chunked_peak_mb"] / report["naive_peak_mb"], 4)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print("| variant | peak MB (fwd+bwd) |\n|---|---|")
    print(f"| naive (full [B,T,V] fp32 logits) | {report['naive_peak_mb']} |")
    print(f"| chunked ({args.chunk} positions/chunk) | {report['chunked_peak_mb']} |")
    print(f"ratio {report['chunked_over_naive']:.3f}; max |Δlogp| {diff:.2e}; max |Δgrad| {grad_diff:.2e}")


if __name__ == "__main__":
    main()
