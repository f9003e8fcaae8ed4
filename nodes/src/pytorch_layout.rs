//! kyutai's PyTorch layout of the Moshi LM (`model.safetensors` as
//! `moshi.models.lm.LMModel` saves it), read through the moshi crate's
//! candle names.
//!
//! The two layouts hold the same weights under other names: PyTorch keeps one
//! depformer transformer with per-step weights (`depformer.layers.{l}.
//! self_attn.in_projs.{i}`, `gating.{i}`) and norms shared by every step,
//! `depformer_in.{i}`, `depformer_emb.{i-1}`, `depformer_text_emb` and
//! `linears.{i}`; candle keeps one small transformer per step
//! (`depformer.{i}.transformer.layers.{l}…`, `depformer.{i}.linear_in`, …).
//! [`to_pytorch`] maps a candle name to the PyTorch one (a shared norm is read
//! once per step), [`candle_shapes`] maps a PyTorch header back for size
//! inference.

use candle::{DType, Device, Shape, Tensor};

use crate::spec::Shapes;

/// Whether a file's tensors are in the PyTorch layout.
pub fn is_pytorch(shapes: &Shapes) -> bool {
    shapes.contains_key("depformer_in.0.weight")
}

/// The PyTorch name of a candle tensor name (unchanged where they agree).
pub fn to_pytorch(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("depformer.") {
        let (step, rest) = rest.split_once('.').unwrap_or((rest, ""));
        return match rest {
            "linear_in.weight" => format!("depformer_in.{step}.weight"),
            "linear_out.weight" => format!("linears.{step}.weight"),
            "emb.weight" if step == "0" => "depformer_text_emb.weight".into(),
            "emb.weight" => match step.parse::<usize>() {
                Ok(i) => format!("depformer_emb.{}.weight", i - 1),
                Err(_) => name.into(),
            },
            _ => match rest.strip_prefix("transformer.layers.") {
                Some(layer_rest) => {
                    let (layer, what) = layer_rest.split_once('.').unwrap_or((layer_rest, ""));
                    let l = format!("depformer.layers.{layer}");
                    match what {
                        "self_attn.in_proj_weight" => {
                            format!("{l}.self_attn.in_projs.{step}.weight")
                        }
                        "self_attn.out_proj.weight" => {
                            format!("{l}.self_attn.out_projs.{step}.weight")
                        }
                        w if w.starts_with("gating.") => {
                            format!("{l}.gating.{step}.{}", &w["gating.".len()..])
                        }
                        w => format!("{l}.{w}"),
                    }
                }
                None => name.into(),
            },
        };
    }
    if let Some(rest) = name.strip_prefix("transformer.layers.") {
        if let Some(layer) = rest.strip_suffix(".self_attn.in_proj_weight") {
            return format!("transformer.layers.{layer}.self_attn.in_projs.0.weight");
        }
        if let Some(layer) = rest.strip_suffix(".self_attn.out_proj.weight") {
            return format!("transformer.layers.{layer}.self_attn.out_projs.0.weight");
        }
    }
    name.into()
}

/// A PyTorch-layout header under candle names (each shared norm once per
/// step), so the same size inference reads both layouts.
pub fn candle_shapes(pt: &Shapes) -> Shapes {
    let steps = (0..)
        .take_while(|i| pt.contains_key(&format!("depformer_in.{i}.weight")))
        .count();
    let mut out = Shapes::new();
    // Every candle name the depformer and backbone can ask for, mapped forward.
    let mut candle_names: Vec<String> = Vec::new();
    for k in pt.keys() {
        if let Some(rest) = k.strip_prefix("depformer.layers.") {
            let (layer, what) = rest.split_once('.').unwrap_or((rest, ""));
            for i in 0..steps {
                let what = what
                    .replace(&format!("in_projs.{i}.weight"), "in_proj_weight")
                    .replace(&format!("out_projs.{i}.weight"), "out_proj.weight")
                    .replace(&format!("gating.{i}."), "gating.");
                candle_names.push(format!("depformer.{i}.transformer.layers.{layer}.{what}"));
            }
        } else if let Some(rest) = k.strip_prefix("transformer.layers.") {
            candle_names.push(format!(
                "transformer.layers.{}",
                rest.replace("in_projs.0.weight", "in_proj_weight")
                    .replace("out_projs.0.weight", "out_proj.weight")
            ));
        }
    }
    for i in 0..steps {
        for what in ["linear_in.weight", "linear_out.weight", "emb.weight"] {
            candle_names.push(format!("depformer.{i}.{what}"));
        }
    }
    for k in pt.keys() {
        if !k.starts_with("depformer")
            && !k.starts_with("linears.")
            && !k.starts_with("transformer.layers.")
        {
            candle_names.push(k.clone());
        }
    }
    for c in candle_names {
        if let Some(s) = pt.get(&to_pytorch(&c)) {
            out.insert(c, s.clone());
        }
    }
    out
}

/// A var-builder backend that reads candle names from a PyTorch-layout file.
pub struct PytorchNames<B>(pub B);

impl<B: candle_nn::var_builder::SimpleBackend> candle_nn::var_builder::SimpleBackend
    for PytorchNames<B>
{
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle::Result<Tensor> {
        self.0.get(s, &to_pytorch(name), h, dtype, dev)
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle::Result<Tensor> {
        self.0.get_unchecked(&to_pytorch(name), dtype, dev)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(&to_pytorch(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candle_names_map_to_kyutai_pytorch_names() {
        for (c, p) in [
            ("depformer.3.linear_in.weight", "depformer_in.3.weight"),
            ("depformer.3.linear_out.weight", "linears.3.weight"),
            ("depformer.0.emb.weight", "depformer_text_emb.weight"),
            ("depformer.3.emb.weight", "depformer_emb.2.weight"),
            (
                "depformer.3.transformer.layers.1.self_attn.in_proj_weight",
                "depformer.layers.1.self_attn.in_projs.3.weight",
            ),
            (
                "depformer.3.transformer.layers.1.self_attn.out_proj.weight",
                "depformer.layers.1.self_attn.out_projs.3.weight",
            ),
            (
                "depformer.3.transformer.layers.1.gating.linear_in.weight",
                "depformer.layers.1.gating.3.linear_in.weight",
            ),
            (
                "depformer.3.transformer.layers.1.norm1.alpha",
                "depformer.layers.1.norm1.alpha",
            ),
            (
                "transformer.layers.0.self_attn.in_proj_weight",
                "transformer.layers.0.self_attn.in_projs.0.weight",
            ),
            (
                "transformer.layers.0.norm1.alpha",
                "transformer.layers.0.norm1.alpha",
            ),
            ("text_emb.weight", "text_emb.weight"),
            ("emb.5.weight", "emb.5.weight"),
        ] {
            assert_eq!(to_pytorch(c), p);
        }
    }
}
