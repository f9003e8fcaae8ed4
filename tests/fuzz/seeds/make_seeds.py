#!/usr/bin/env python3
"""Writes the hand-made seed inputs of every fuzz corpus (tests/fuzz/corpus/<target>/).
Run once from tests/fuzz; the fuzzer then grows and `cargo fuzz cmin` minimises the corpora."""
import json, os, struct, glob, wave, io

def put(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    open(os.path.join(d, "seed-" + name), "wb").write(data)

# plugin_state: nice-plug's JSON state
good = {"version": "0.1.0", "params": {
    "gain_db": {"f32": -6.0}, "mix": {"f32": 0.5}, "bypass": {"bool": False},
    "audio_temperature": {"f32": 0.8}, "text_temperature": {"f32": 0.7},
    "top_k": {"i32": 250}, "codebook_depth": {"i32": 8}, "lead_floor_ms": {"f32": 40.0},
    "listen": {"bool": True}, "reset": {"bool": False}},
    "fields": {"model_dir": "\"\"", "preset": "\"conversation\""}}
put("plugin_state", "good", json.dumps(good))
bad = dict(good, params={"gain_db": {"f32": 1e30}, "top_k": {"f32": 3.0}, "cutoff": {"string": "x"}},
           fields={"model_dir": "{"})
put("plugin_state", "foreign", json.dumps(bad))
put("plugin_state", "empty-object", '{"params":{},"fields":{}}')
put("plugin_state", "not-json", "\x00\x01garbage")
put("plugin_state", "truncated", json.dumps(good)[:60])

# preset: first byte 0 = TOML, 1 = JSON
for f in sorted(glob.glob("../../presets/*.toml")):
    put("preset", os.path.basename(f), b"\x00" + open(f, "rb").read())
put("preset", "json", b"\x01" + json.dumps({"name": "x", "knobs": {"top_k": 5, "mix": 0.3}}).encode())
put("preset", "out-of-range", b"\x00[knobs]\ntop_k = 100000\n")
put("preset", "unknown-knob", b"\x00[knobs]\ntemprature = 1\n")

# graph_desc
put("graph_desc", "chain", json.dumps({"nodes": [
    {"name": "rs", "kind": "resample", "params": {"rate": 24000}},
    {"name": "enc", "kind": "encoder", "params": {"codebooks": 8}},
    {"name": "dec", "kind": "decoder", "params": {"codebooks": 8}}],
    "edges": [{"from": "enc.codes", "to": "dec.codes"}], "input": "enc.in", "output": "dec.out"}))
put("graph_desc", "one", '{"nodes":[{"name":"a","kind":"resample"}],"input":"a.in","output":"a.out"}')
put("graph_desc", "cycle", json.dumps({"nodes": [{"name": "a", "kind": "resample"}, {"name": "b", "kind": "resample"}],
    "edges": [{"from": "a.out", "to": "b.in"}, {"from": "b.out", "to": "a.in"}], "input": "a.in", "output": "b.out"}))
put("graph_desc", "mismatch", json.dumps({"nodes": [{"name": "e", "kind": "encoder", "params": {"codebooks": 4}},
    {"name": "d", "kind": "decoder"}], "edges": [{"from": "e.codes", "to": "d.codes"}], "input": "e.in", "output": "d.out"}))
put("graph_desc", "unknown-kind", '{"nodes":[{"name":"a","kind":"x"}],"input":"a.in","output":"a.out","extra":1}')

# kyutai_config (config.json)
put("kyutai_config", "moshi", json.dumps({"dim": 4096, "num_heads": 32, "num_layers": 32, "context": 3000,
    "max_period": 10000, "depformer_num_heads": 16, "depformer_dim": 1024, "card": 2048, "n_q": 16}))
put("kyutai_config", "empty", "{}")
put("kyutai_config", "zero-heads", '{"num_heads": 0, "context": 0}')
put("kyutai_config", "huge", '{"num_heads": 18446744073709551615, "context": 1e300}')
put("kyutai_config", "array", "[1,2,3]")

# model_manifest: the built-in model's manifest
m = glob.glob("/tmp/antiphon-builtin-*/antiphon.json")
if m:
    text = open(m[0]).read()
    put("model_manifest", "builtin", text)
    j = json.loads(text)
    j["mimi"]["config"]["ratios"] = [8, 6, 5, 4]
    put("model_manifest", "bad-ratios", json.dumps(j))
    j = json.loads(text); j["format"] = "other/2"
    put("model_manifest", "bad-format", json.dumps(j))
    j = json.loads(text); j["lm"]["config"]["transformer"]["num_heads"] = 0
    put("model_manifest", "zero-heads", json.dumps(j))
    put("model_manifest", "truncated", text[: len(text) // 2])

# wav: the formats the host reads
def wav(ch, rate, width, frames, fmt=1):
    b = io.BytesIO()
    data = bytes((i * 37) & 0xFF for i in range(ch * width * frames))
    hdr = struct.pack("<4sI4s", b"RIFF", 36 + len(data), b"WAVE")
    fmtc = struct.pack("<4sIHHIIHH", b"fmt ", 16, fmt, ch, rate, rate * ch * width, ch * width, width * 8)
    return hdr + fmtc + struct.pack("<4sI", b"data", len(data)) + data
put("wav", "pcm16-mono", wav(1, 16000, 2, 64))
put("wav", "pcm8-stereo", wav(2, 8000, 1, 64))
put("wav", "pcm24", wav(1, 48000, 3, 32))
put("wav", "float32-3ch", wav(3, 22050, 4, 16, fmt=3))
put("wav", "4khz", wav(1, 4000, 2, 16))
put("wav", "huge-data-size", wav(1, 16000, 2, 8)[:40] + struct.pack("<I", 0xFFFFFFF0) + b"\x00" * 16)
put("wav", "truncated", wav(1, 16000, 2, 64)[:30])

# safetensors: header (u64 length + JSON) + data; tensor names as the loaders look for them
def st(tensors):
    header, data = {}, b""
    for name, shape in tensors:
        n = 4
        for d in shape: n *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += b"\x00" * n
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data
lm = [("text_emb.weight", [5, 4]), ("text_linear.weight", [5, 4]), ("emb.0.weight", [3, 4]), ("emb.1.weight", [3, 4]),
      ("transformer.layers.0.gating.linear_in.weight", [22, 4]), ("depformer.0.linear_in.weight", [4, 4]),
      ("depformer.0.transformer.layers.0.gating.linear_in.weight", [22, 4])]
put("safetensors_header", "lm", st(lm))
mimi = [("encoder.model.0.conv.conv.weight", [2, 1, 3]),
        ("encoder_transformer.transformer.layers.0.self_attn.out_proj.weight", [4, 4]),
        ("encoder_transformer.transformer.layers.0.linear1.weight", [8, 4]),
        ("quantizer.rvq_first.vq.layers.0._codebook.embedding_sum", [3, 2]),
        ("quantizer.rvq_rest.vq.layers.0._codebook.embedding_sum", [3, 2])]
put("safetensors_header", "mimi", st(mimi))
put("safetensors_header", "scalar-shapes", st([("text_emb.weight", []), ("emb.0.weight", [])]))
put("safetensors_header", "empty", st([]))
put("safetensors_header", "bad-length", struct.pack("<Q", 1 << 40) + b"{}")

# gguf v3: magic, version, tensor count, kv count, kvs, tensor infos, aligned data
def gstr(s): s = s.encode(); return struct.pack("<Q", len(s)) + s
def gguf(tensors, kvs=()):
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, v in kvs:
        out += gstr(k) + struct.pack("<I", 4) + struct.pack("<I", v)  # u32 value
    off = 0
    for name, shape in tensors:
        out += gstr(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        out += struct.pack("<IQ", 0, off)  # F32
        n = 4
        for d in shape: n *= d
        off += (n + 31) // 32 * 32
    out += b"\x00" * ((-len(out)) % 32)
    return out + b"\x00" * off
put("gguf_header", "lm", gguf([(n, list(reversed(s))) for n, s in lm], [("general.alignment", 32)]))
put("gguf_header", "one", gguf([("text_emb.weight", [4, 5])]))
put("gguf_header", "past-end", gguf([("x", [1000, 1000])])[:200])
put("gguf_header", "v1", b"GGUF" + struct.pack("<IQQ", 1, 0, 0))
put("gguf_header", "huge-count", b"GGUF" + struct.pack("<IQQ", 3, 1 << 60, 1 << 60))
