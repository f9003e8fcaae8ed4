//! Greedy CSM frames on a model folder, for `tests/reference/csm_parity.py`:
//! writes the text tokens, every frame's 32 codes and the audio our Mimi
//! decodes from them, as JSON.
//!
//!     cargo run --release -p antiphon-nodes --example csm_greedy -- DIR "TEXT" FRAMES OUT.json

use antiphon_nodes::bundle::FRAME_SAMPLES;
use antiphon_nodes::codec::MimiDecoder;
use antiphon_nodes::csm::CsmModel;
use antiphon_nodes::ModelBundle;
use candle::{DType, Device, Tensor};

fn argmax(logits: &Tensor) -> candle::Result<u32> {
    logits.argmax(0)?.to_scalar::<u32>()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, text, frames, out] = args.as_slice() else {
        return Err("usage: csm_greedy DIR TEXT FRAMES OUT.json".into());
    };
    let frames: usize = frames.parse()?;
    let bundle = ModelBundle::load(dir)?;
    let m: &CsmModel = bundle.parts().ok_or("not a CSM model")?;
    // Our Mimi decoder over the folder's codec file (the bundle's own copy is
    // private to the graph's nodes). Safety: the file is mapped read-only.
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(
            &[&bundle.mimi_file],
            DType::F32,
            &Device::Cpu,
        )?
    };
    let mut codec = MimiDecoder::new(&bundle.mimi_config(), FRAME_SAMPLES, vb)?;
    let bins = bundle.manifest.mimi.config.quantizer_bins as u32;
    let ids = m.tokenizer.turn(0, text)?;
    let (mut backbone, mut decoder) = (m.backbone.clone(), m.audio_decoder.clone());
    backbone.clear();
    let mut h = backbone.forward(&backbone.embed_text(&ids)?)?;
    let (mut codes, mut audio, mut pcm) = (Vec::new(), Vec::new(), Vec::new());
    let mut frame = Vec::new();
    for _ in 0..frames {
        let c0 = argmax(&backbone.codebook0_logits(&h)?)?;
        decoder.frame(&h, c0, &mut frame, |_, l| argmax(l))?;
        let playable: Vec<u32> = frame
            .iter()
            .map(|&c| if c < bins { c } else { 0 })
            .collect();
        codec.decode_step(&playable, playable.len(), &mut pcm)?;
        audio.extend_from_slice(&pcm);
        codes.push(frame.clone());
        h = backbone.forward(&backbone.embed_audio(std::slice::from_ref(&frame))?)?;
    }
    let json = serde_json::json!({ "text": text, "ids": ids, "codes": codes, "audio": audio });
    std::fs::write(out, json.to_string())?;
    println!("{} frames, {} samples → {out}", codes.len(), audio.len());
    Ok(())
}
