//! Weight buffers on 2 MiB pages.
//!
//! A batch-1 model step streams every weight from memory once, so the walk
//! through a few hundred MB of 4 KiB pages costs a TLB miss per page (a
//! two-level walk inside a VM). Linux backs memory with 2 MiB pages only
//! where asked (`transparent_hugepage=madvise`, the common default), and
//! `Vec`/`Arc` give no say over alignment or advice, hence this type.
//! Measured on an f32 product over 256 MB (`thin_matmul`, 2 threads): 22.8 →
//! 25.8 GB/s; real-size Mimi encode + decode (`antiphon model bench`, A/B
//! interleaved): 33.1 / 36.8 → 31.7 / 34.1 ms. Elsewhere (other OSes, THP off, small buffers) it is a plain
//! aligned buffer.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

/// Huge-page size, and the smallest buffer that asks for them.
const HUGE: usize = 2 << 20;

/// Read-only weights, shared by clones (a model's clones share weights).
pub struct Weights<T>(Arc<Buf<T>>);

impl<T> Clone for Weights<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> std::fmt::Debug for Weights<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Weights({} × {})",
            self.0.len,
            std::any::type_name::<T>()
        )
    }
}

impl<T> Deref for Weights<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // Safety: `ptr` holds `len` initialised elements for the life of `Buf`.
        unsafe { std::slice::from_raw_parts(self.0.ptr.as_ptr(), self.0.len) }
    }
}

impl<T: Copy> From<Vec<T>> for Weights<T> {
    fn from(v: Vec<T>) -> Self {
        Self::from(&v[..])
    }
}

impl<T: Copy> From<&[T]> for Weights<T> {
    fn from(v: &[T]) -> Self {
        Self(Arc::new(Buf::copy_of(v)))
    }
}

impl<T: candle::WithDType> Weights<T> {
    /// A tensor's elements (made contiguous, on the CPU), copied straight
    /// from candle's storage: no intermediate `Vec`, whose freed pages would
    /// stay resident in the heap beside the weights.
    pub fn from_tensor(t: &candle::Tensor) -> candle::Result<Self> {
        let t = t.to_device(&candle::Device::Cpu)?.contiguous()?;
        let (storage, layout) = t.storage_and_layout();
        let candle::Storage::Cpu(cpu) = &*storage else {
            candle::bail!("weights are not on the CPU")
        };
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle::bail!("weights are not contiguous")
        };
        Ok(Self::from(&cpu.as_slice::<T>()?[a..b]))
    }
}

struct Buf<T> {
    ptr: NonNull<T>,
    len: usize,
    /// `None` for an empty buffer (nothing allocated).
    layout: Option<Layout>,
}

// Safety: `Buf` owns its elements like a `Box<[T]>` and never mutates them after construction.
unsafe impl<T: Send> Send for Buf<T> {}
unsafe impl<T: Sync> Sync for Buf<T> {}

impl<T: Copy> Buf<T> {
    fn copy_of(src: &[T]) -> Self {
        let bytes = std::mem::size_of_val(src);
        if bytes == 0 {
            return Self {
                ptr: NonNull::dangling(),
                len: src.len(),
                layout: None,
            };
        }
        let align = if bytes >= HUGE {
            HUGE
        } else {
            std::mem::align_of::<T>()
        };
        let layout = Layout::from_size_align(bytes, align).expect("weight buffer layout");
        // Safety: non-zero size.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw as *mut T) else {
            handle_alloc_error(layout)
        };
        if bytes >= HUGE {
            advise_huge(raw, bytes);
        }
        // Safety: the allocation holds `src.len()` elements of T and does not overlap `src`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), ptr.as_ptr(), src.len()) };
        Self {
            ptr,
            len: src.len(),
            layout: Some(layout),
        }
    }
}

impl<T> Drop for Buf<T> {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // Safety: allocated in `copy_of` with this layout.
            unsafe { dealloc(self.ptr.as_ptr() as *mut u8, layout) };
        }
    }
}

/// Asks for 2 MiB pages before the first write (so faults allocate them
/// directly). Best effort: an error leaves ordinary pages, which only cost speed.
#[cfg(target_os = "linux")]
fn advise_huge(ptr: *mut u8, bytes: usize) {
    let whole = bytes / HUGE * HUGE;
    // Safety: [ptr, ptr + whole) lies inside one allocation, 2 MiB aligned.
    unsafe { libc::madvise(ptr as *mut libc::c_void, whole, libc::MADV_HUGEPAGE) };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_ptr: *mut u8, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::Weights;

    #[test]
    fn holds_what_it_was_given_at_any_size() {
        for n in [0usize, 1, 1000, (2 << 20) / 4 + 3, 3 << 20] {
            let v: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
            let w = Weights::from(v.clone());
            assert_eq!(&w[..], &v[..]);
            let c = w.clone();
            drop(w);
            assert_eq!(c.len(), n);
            assert_eq!(c.last(), v.last());
            if n * 4 >= 2 << 20 {
                assert_eq!(c.as_ptr() as usize % (2 << 20), 0, "2 MiB aligned");
            }
        }
    }
}
