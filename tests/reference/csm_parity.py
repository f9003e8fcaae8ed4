#!/usr/bin/env python3
"""CSM parity: our Rust CSM against Hugging Face `transformers`'
`CsmForConditionalGeneration` on the same tiny random weights (the stand-in,
Hugging Face layout), greedy decoding.

    /work/venv-ref/bin/pip install transformers   # torch and kyutai's moshi (0.2.13) already there
    cargo build --workspace --bins --examples
    target/debug/antiphon model init /tmp/csm --family csm --seed 7
    target/debug/examples/csm_greedy /tmp/csm "Hello there." 60 /tmp/csm/rust.json
    /work/venv-ref/bin/python tests/reference/csm_parity.py /tmp/csm /tmp/csm/rust.json

Measured (transformers 5.23.0, torch 2.9.1, seed 7, 60 frames): text tokens
identical (17), greedy codes identical in all 60 frames x 32 codebooks, audio
max |difference| 1.48e-6 over 4.80 s (reference rms 0.334).

Checks, and prints the figures:
* the text tokens: Hugging Face `tokenizers` on the folder's tokenizer.json vs ours;
* greedy codes, frame by frame, all 32 codebooks (identical for every frame);
* audio: the reference's codes decoded by kyutai's PyTorch Mimi (streaming,
  one frame at a time, same weights file) vs ours (our codes, our Mimi):
  max |difference| <= 1e-4.
"""
import copy
import json
import sys

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import CsmConfig, CsmForConditionalGeneration
from moshi.models import loaders

FRAME = 1920


def tiny_mimi(path, n_q):
    """kyutai's PyTorch Mimi at the stand-in's sizes (nodes/src/builtin.rs, tiny_mimi_spec)."""
    cfg = copy.deepcopy(loaders._mimi_config)
    cfg["seanet"].update(dimension=64, n_filters=4)
    cfg["quantizer"].update(dimension=16, input_dimension=64, output_dimension=64, n_q=n_q)
    cfg["transformer"].update(d_model=64, num_heads=8, num_layers=1, dim_feedforward=128,
                              input_dimension=64, output_dimensions=[64])
    return loaders.get_mimi(path, cfg, device="cpu", num_codebooks=n_q)


def main():
    folder, rust_json = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    ours = json.load(open(rust_json))
    ids, our_codes = ours["ids"], np.array(ours["codes"], dtype=np.int64)
    frames = len(our_codes)

    # Text: Sesame's template, tokenised by Hugging Face's own library.
    tok = Tokenizer.from_file(f"{folder}/tokenizer.json")
    ref_ids = ([tok.token_to_id("<|begin_of_text|>")]
               + tok.encode(f"[0]{ours['text']}", add_special_tokens=False).ids
               + [tok.token_to_id("<|end_of_text|>")])
    print(f"text tokens: {len(ids)}, identical to Hugging Face tokenizers: {ref_ids == ids}")
    assert ref_ids == ids, (ref_ids, ids)

    cfg = CsmConfig.from_pretrained(folder)
    model = CsmForConditionalGeneration.from_pretrained(folder, config=cfg, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor([ids]), max_new_tokens=frames, min_new_tokens=frames,
            do_sample=False, depth_decoder_do_sample=False, output_audio=False,
        )
    ref_codes = out[0].numpy() if isinstance(out, torch.Tensor) else out.sequences[0].numpy()
    ref_codes = ref_codes[:frames]
    same = (ref_codes == our_codes).all(axis=1)
    first_diff = int(np.argmin(same)) if not same.all() else None
    print(f"greedy frames compared: {len(ref_codes)} x {ref_codes.shape[1]} codebooks; "
          f"identical frames: {int(same.sum())}; first difference: {first_diff}")

    # Audio: the reference's codes through kyutai's PyTorch Mimi, frame by frame.
    mimi = tiny_mimi(f"{folder}/tokenizer-e351c8d8-checkpoint125.safetensors", ref_codes.shape[1])
    pcm = []
    with torch.no_grad(), mimi.streaming(1):
        for f in ref_codes:
            c = torch.from_numpy(np.where(f < 2048, f, 0)).view(1, -1, 1)
            pcm.append(mimi.decode(c)[0, 0].numpy())
    ref_audio = np.concatenate(pcm)
    our_audio = np.array(ours["audio"], dtype=np.float32)
    n = min(len(ref_audio), len(our_audio))
    diff = float(np.abs(ref_audio[:n] - our_audio[:n]).max())
    print(f"audio: {n} samples ({n / 24000:.2f} s), reference rms {float(np.sqrt((ref_audio[:n] ** 2).mean())):.4g}, "
          f"max |ours - reference| = {diff:.3g}")
    assert len(ref_codes) >= 50 and same.all(), "greedy codes differ"
    assert diff <= 1e-4, "audio differs"
    print("PARITY OK")


if __name__ == "__main__":
    main()
