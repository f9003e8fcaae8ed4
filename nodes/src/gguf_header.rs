//! A bounds check of a GGUF header before candle parses it.
//!
//! candle's `gguf_file::Content::read` trusts the sizes a header states: it
//! allocates string buffers, array vectors and dimension lists of the claimed
//! length before reading them, recurses into nested arrays without a limit and
//! divides by `general.alignment`. A truncated or crafted file therefore aborts
//! the process (allocation failure), overflows the stack or panics instead of
//! giving an error (found by fuzzing `gguf_header`). This walker reads the same
//! layout and rejects any length larger than the bytes left in the file or
//! than a sane cap, so the parse that follows only sees plausible sizes.

use std::io::Read;

/// Longest string (key, value, tensor name) accepted, bytes.
const MAX_STRING: u64 = 1 << 24;
/// Most elements in one metadata array (real vocabularies: ~10^5).
const MAX_ARRAY: u64 = 1 << 24;
/// Deepest nesting of arrays.
const MAX_NESTING: u32 = 4;
/// Most dimensions of a tensor (GGML has 4).
const MAX_DIMS: u32 = 8;

struct Walker<R> {
    r: R,
    left: u64,
    wide: bool,
}

impl<R: Read> Walker<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        if self.left < N as u64 {
            return Err("the header runs past the end of the file".into());
        }
        self.r
            .read_exact(&mut b)
            .map_err(|e| format!("cannot read the header: {e}"))?;
        self.left -= N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.bytes::<8>().map(u64::from_le_bytes)
    }

    /// A count or length: u32 in GGUF v1, u64 later.
    fn len(&mut self) -> Result<u64, String> {
        if self.wide {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
        if n > self.left {
            return Err(format!("{what} of {n} bytes runs past the end of the file"));
        }
        let copied = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())
            .map_err(|e| format!("cannot read the header: {e}"))?;
        if copied != n {
            return Err("the header runs past the end of the file".into());
        }
        self.left -= n;
        Ok(())
    }

    fn string(&mut self, what: &str) -> Result<(), String> {
        let n = self.len()?;
        if n > MAX_STRING {
            return Err(format!("{what} claims {n} bytes"));
        }
        self.skip(n, what)
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<(), String> {
        match ty {
            0 | 1 | 7 => self.skip(1, "a value"),
            2 | 3 => self.skip(2, "a value"),
            4..=6 => self.skip(4, "a value"),
            10..=12 => self.skip(8, "a value"),
            8 => self.string("a string value"),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(format!("arrays nested deeper than {MAX_NESTING}"));
                }
                let elem = self.u32()?;
                let n = self.len()?;
                if n > MAX_ARRAY || n > self.left {
                    return Err(format!("an array claims {n} elements"));
                }
                (0..n).try_for_each(|_| self.value(elem, depth + 1))
            }
            t => Err(format!("unknown metadata value type {t}")),
        }
    }
}

/// Walks the header of a GGUF file of `file_len` bytes read from `r`;
/// `Err` says what is implausible.
pub fn check(r: impl Read, file_len: u64) -> Result<(), String> {
    let mut w = Walker {
        r: std::io::BufReader::new(r),
        left: file_len,
        wide: true,
    };
    if &w.bytes::<4>()? != b"GGUF" {
        return Err("not a GGUF file (bad magic)".into());
    }
    match w.u32()? {
        1 => w.wide = false,
        2 | 3 => {}
        v => return Err(format!("unsupported GGUF version {v}")),
    }
    let tensors = w.len()?;
    let kvs = w.len()?;
    for _ in 0..kvs {
        // Key, then a (type, value); `general.alignment` must be a usable divisor.
        let key_len = w.len()?;
        if key_len > MAX_STRING || key_len > w.left {
            return Err(format!("a metadata key claims {key_len} bytes"));
        }
        let mut key = vec![0u8; key_len as usize];
        w.r.read_exact(&mut key)
            .map_err(|e| format!("cannot read the header: {e}"))?;
        w.left -= key_len;
        let ty = w.u32()?;
        if key == b"general.alignment" && matches!(ty, 0..=5) {
            // Signed negatives make candle use its default; only 0 is fatal.
            let v = match ty {
                0 | 1 => u64::from(w.bytes::<1>()?[0]),
                2 | 3 => u64::from(u16::from_le_bytes(w.bytes::<2>()?)),
                _ => u64::from(w.u32()?),
            };
            if v == 0 {
                return Err("general.alignment is 0".into());
            }
        } else {
            w.value(ty, 0)?;
        }
    }
    for _ in 0..tensors {
        w.string("a tensor name")?;
        let n_dims = w.u32()?;
        if n_dims > MAX_DIMS {
            return Err(format!("a tensor claims {n_dims} dimensions"));
        }
        // Zeros aside, the product must fit: candle multiplies the dimensions
        // in reverse order, so a leading 0 does not save it from overflowing.
        let mut elems = 1u64;
        for _ in 0..n_dims {
            let d = w.len()?;
            if d != 0 {
                elems = elems
                    .checked_mul(d)
                    .filter(|&e| e <= file_len.saturating_mul(8))
                    .ok_or_else(|| {
                        "a tensor claims more elements than the file holds".to_string()
                    })?;
            }
        }
        w.u32()?; // dtype: checked by candle
        w.u64()?; // offset: checked against the file length by the loader
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u32, tensors: u64, kvs: u64) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(version.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(kvs.to_le_bytes());
        b
    }

    fn err(b: &[u8]) -> String {
        check(b, b.len() as u64).unwrap_err()
    }

    /// Each case made candle abort, overflow its stack or panic before this check.
    #[test]
    fn implausible_sizes_are_refused() {
        // A string longer than the file.
        let mut b = header(3, 0, 1);
        b.extend((1u64 << 40).to_le_bytes());
        assert!(err(&b).contains("metadata key claims"), "{}", err(&b));
        // An array of 2^40 elements.
        let mut b = header(3, 0, 1);
        b.extend(1u64.to_le_bytes());
        b.push(b'k');
        b.extend(9u32.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend((1u64 << 40).to_le_bytes());
        assert!(err(&b).contains("array claims"), "{}", err(&b));
        // Arrays nested 5 deep.
        let mut b = header(3, 0, 1);
        b.extend(1u64.to_le_bytes());
        b.push(b'k');
        b.extend(9u32.to_le_bytes());
        for _ in 0..6 {
            b.extend(9u32.to_le_bytes());
            b.extend(1u64.to_le_bytes());
        }
        assert!(err(&b).contains("nested"), "{}", err(&b));
        // Alignment 0 (candle divides by it).
        let mut b = header(3, 0, 1);
        b.extend(17u64.to_le_bytes());
        b.extend(b"general.alignment");
        b.extend(4u32.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        assert_eq!(err(&b), "general.alignment is 0");
        // 2^32 dimensions, and dimensions whose product overflows.
        let mut b = header(3, 1, 0);
        b.extend(1u64.to_le_bytes());
        b.push(b't');
        b.extend(u32::MAX.to_le_bytes());
        assert!(err(&b).contains("dimensions"), "{}", err(&b));
        let mut b = header(3, 1, 0);
        b.extend(1u64.to_le_bytes());
        b.push(b't');
        b.extend(2u32.to_le_bytes());
        b.extend(u64::MAX.to_le_bytes());
        b.extend(u64::MAX.to_le_bytes());
        assert!(err(&b).contains("more elements"), "{}", err(&b));
        // Found by fuzzing: a leading zero dimension hid the overflow of the rest.
        let mut b = header(3, 1, 0);
        b.extend(1u64.to_le_bytes());
        b.push(b't');
        b.extend(3u32.to_le_bytes());
        for d in [0, 1u64 << 40, 1 << 40] {
            b.extend(d.to_le_bytes());
        }
        assert!(err(&b).contains("more elements"), "{}", err(&b));
        assert_eq!(err(b"GGUF\x07\0\0\0"), "unsupported GGUF version 7");
    }

    #[test]
    fn a_plain_header_passes() {
        let mut b = header(3, 1, 1);
        b.extend(17u64.to_le_bytes());
        b.extend(b"general.alignment");
        b.extend(4u32.to_le_bytes());
        b.extend(32u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.push(b't');
        b.extend(2u32.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend(5u64.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        assert_eq!(check(&b[..], b.len() as u64), Ok(()));
    }
}
