//! Seeds for the built-in model's weights and for sampling. The generator is
//! the framework's SplitMix64 (candle's CPU RNG cannot be seeded, and the
//! weights must be identical on every machine).

pub use antiphon_framework::rng::SplitMix64;

/// Mixes a seed with a name (FNV-1a), so each tensor gets its own stream and
/// the weights do not depend on the order in which tensors are requested.
pub fn seed_for(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    SplitMix64::new(h).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn deterministic_and_normal() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let xs: Vec<f64> = (0..20_000).map(|_| a.next_normal()).collect();
        assert!(xs
            .iter()
            .zip((0..20_000).map(|_| b.next_normal()))
            .all(|(x, y)| *x == y));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "mean {mean} var {var}"
        );
        assert_ne!(seed_for(1, "a"), seed_for(2, "a"));
        assert_ne!(seed_for(1, "a"), seed_for(1, "b"));
    }
}
