#!/usr/bin/env python3
"""Reference timing: kyutai's PyTorch `moshi` Mimi, streaming encode + decode
per 80 ms frame, on the same weights and input as our
`nodes/examples/mimi_real_size.rs` (a file written by
`antiphon model init DIR --size real-mimi`).

    python3 -m venv /work/venv-ref && /work/venv-ref/bin/pip install moshi==0.2.13
    /work/venv-ref/bin/python nodes/scripts/mimi_torch_bench.py DIR/tokenizer-e351c8d8-checkpoint125.safetensors [FRAMES] [THREADS]

Prints p50/p90/p99 ms per frame for encode and decode (default 2 threads).
"""
import copy
import math
import sys
import time

import numpy as np
import torch
from moshi.models import loaders

FRAME = 1920


def signal(k: int) -> np.ndarray:
    n = np.arange(k * FRAME, (k + 1) * FRAME, dtype=np.float64)
    return (0.3 * np.sin(n * 0.0571) + 0.1 * np.sin(n * 0.31)).astype(np.float32)


def pct(v, p):
    v = sorted(v)
    return v[int(round((len(v) - 1) * p))] * 1e3


def main():
    path = sys.argv[1]
    frames = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    torch.set_num_threads(threads)
    cfg = copy.deepcopy(loaders._mimi_config)
    cfg["quantizer"]["n_q"] = 8
    mimi = loaders.get_mimi(path, cfg, device="cpu", num_codebooks=8)
    enc_t, dec_t = [], []
    with torch.no_grad(), mimi.streaming(1):
        for k in range(frames):
            x = torch.from_numpy(signal(k)).view(1, 1, FRAME)
            t = time.perf_counter()
            codes = mimi.encode(x)
            enc_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            mimi.decode(codes)
            dec_t.append(time.perf_counter() - t)
    skip = min(frames // 10, 5)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {frames - skip} frames")
    for name, v in (("torch encode", enc_t[skip:]), ("torch decode", dec_t[skip:])):
        print(f"{name:<16} p50 {pct(v, .5):6.1f}  p90 {pct(v, .9):6.1f}  p99 {pct(v, .99):6.1f}  max {pct(v, 1):6.1f} ms")
    print(f"encode+decode p50: torch {pct(enc_t[skip:], .5) + pct(dec_t[skip:], .5):.1f} ms")


if __name__ == "__main__":
    main()
