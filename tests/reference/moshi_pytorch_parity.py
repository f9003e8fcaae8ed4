#!/usr/bin/env python3
"""Parity: a tiny random-weight Moshi LM written in kyutai's PyTorch layout
(`model.safetensors` as `moshi.models.lm.LMModel` saves it, plus a kyutai
`config.json`), run greedily by kyutai's PyTorch `moshi` (LMGen) and by our
backbone + code predictor nodes on the same weights and the same user codes.
Text tokens (every step) and generated audio frames must be identical.

    /work/venv-ref/bin/pip install moshi==0.2.13       # brings torch
    cargo build -p antiphon-host -p antiphon-nodes --example lm_greedy_tokens
    /work/venv-ref/bin/python tests/reference/moshi_pytorch_parity.py [STEPS] [SEED] [--delay D]

Not run by CI (needs torch). Exit status 0 when identical.

Measured (moshi 0.2.13, torch 2.9.1, CPU): text tokens and generated audio
frames identical for 200 steps with seeds 0, 1, 2 (kyutai delays 1) and seed 0
with `--delay 2` (Hibiki's). Our folder runs with the PyTorch stream alignment
because its config.json has `delays`.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import save_file
from moshi.models import loaders
from moshi.models.lm import LMModel, LMGen

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def tiny_config(delay: int) -> dict:
    dep_q, n_q = 8, 16
    cfg = dict(loaders._lm_kwargs)
    cfg.update(
        dim=64, text_card=1000, n_q=n_q, dep_q=dep_q, card=2048, num_heads=4, num_layers=2,
        hidden_scale=4.125, context=100, max_period=10000,
        depformer_dim=32, depformer_dim_feedforward=int(4.125 * 32), depformer_num_heads=2,
        depformer_num_layers=1, depformer_context=dep_q,
        delays=[0] + ([0] + [delay] * (dep_q - 1)) * 2,
    )
    cfg.pop("depformer_causal", None)
    return cfg


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    steps = int(args[0]) if args else 100
    seed = int(args[1]) if len(args) > 1 else 0
    delay = int(sys.argv[sys.argv.index("--delay") + 1]) if "--delay" in sys.argv else 1
    torch.manual_seed(seed)
    cfg = tiny_config(delay)
    model = LMModel(**cfg).eval()
    # Non-trivial norm gains (torch initialises them to 1), so a norm read
    # from the wrong (or a shared vs per-step) tensor shows.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alpha"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))

    d = tempfile.mkdtemp(prefix="moshi-pt-parity-")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(d, "model.safetensors"))
    kyutai = dict(cfg)
    kyutai.update(model_type="moshi", moshi_name="model.safetensors",
                  mimi_name="tokenizer-e351c8d8-checkpoint125.safetensors")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(kyutai, f)
    # Our loader wants Mimi beside the LM: the codec stand-in's file.
    mimi = tempfile.mkdtemp(prefix="moshi-pt-parity-mimi-")
    subprocess.run([os.path.join(TARGET, "debug", "antiphon"), "model", "init",
                    os.path.join(mimi, "m"), "--family", "codec"], check=True,
                   stdout=subprocess.DEVNULL)
    os.rename(os.path.join(mimi, "m", "tokenizer-e351c8d8-checkpoint125.safetensors"),
              os.path.join(d, "tokenizer-e351c8d8-checkpoint125.safetensors"))

    g = torch.Generator().manual_seed(seed + 1)
    user = torch.randint(0, 2048, (steps, cfg["n_q"] - cfg["dep_q"]), generator=g)
    with open(os.path.join(d, "input.json"), "w") as f:
        json.dump(user.tolist(), f)

    # kyutai's PyTorch moshi, greedy.
    text_pt, audio_pt = [], []
    gen = LMGen(model, use_sampling=False, temp=0.0, temp_text=0.0,
                on_text_hook=lambda t: text_pt.append(int(t[0])))
    with gen.streaming(1):
        for k in range(steps):
            out = gen.step(user[k].view(1, -1, 1))
            if out is not None:
                audio_pt.append(out[0, 1:1 + cfg["dep_q"], 0].tolist())

    ours = subprocess.run(
        [os.path.join(TARGET, "debug", "examples", "lm_greedy_tokens"), d,
         os.path.join(d, "input.json")],
        check=True, capture_output=True, text=True).stdout
    ours = json.loads(ours)
    n_audio = min(len(audio_pt), len(ours["audio"]))
    text_same = next((k for k, (a, b) in enumerate(zip(text_pt, ours["text"])) if a != b), None)
    audio_same = next((k for k, (a, b) in enumerate(zip(audio_pt, ours["audio"])) if a != b), None)
    print(f"folder {d}: loaded by antiphon as `{ours['family']}`, kyutai delay {delay} "
          f"-> acoustic_delay {ours['acoustic_delay']}")
    print(f"text tokens: {len(text_pt)} steps, first difference at "
          f"{'none' if text_same is None else text_same}")
    print(f"audio frames: {len(audio_pt)} (torch) / {len(ours['audio'])} (ours), compared {n_audio}, "
          f"first difference at {'none' if audio_same is None else audio_same}")
    distinct = len(set(text_pt)), len({tuple(a) for a in audio_pt})
    print(f"distinct text tokens {distinct[0]}, distinct audio frames {distinct[1]}")
    ok = text_same is None and audio_same is None and n_audio >= steps - 3 and len(text_pt) == steps
    if not ok:
        print("first tokens torch:", text_pt[:12], audio_pt[:3])
        print("first tokens ours: ", ours["text"][:12], ours["audio"][:3])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
