//! A global allocator that refuses any single allocation above a limit, after recording it.
//!
//! Install it in a binary or test only (never in a library others link):
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: ember_fuzz::alloc::LimitAlloc = ember_fuzz::alloc::LimitAlloc::new(1 << 30);
//! ```
//!
//! An over-limit request (or one that would take the bytes live at once over the total limit)
//! gets a null pointer: code that asks politely (`try_reserve`) sees an
//! error, anything else aborts through `handle_alloc_error`. Either way the request is recorded
//! ([`take_refused`]), so the fuzzer reports it as a failure; an abort leaves the input on disk
//! because the runner writes every input out before running it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The size of the largest request refused since the last [`take_refused`] (0: none).
static REFUSED: AtomicUsize = AtomicUsize::new(0);
/// Bytes currently allocated through [`LimitAlloc`].
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most bytes live at once since the last [`take_peak`].
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator with a limit on any single allocation and on the bytes live at once
/// (see the module docs).
#[derive(Debug)]
pub struct LimitAlloc {
    limit: usize,
    total: usize,
}

impl LimitAlloc {
    /// Refuses any single allocation of more than `limit` bytes, and any that would take the
    /// bytes live at once over `4 * limit` (many small allocations add up too).
    pub const fn new(limit: usize) -> Self {
        Self { limit, total: limit.saturating_mul(4) }
    }

    /// The same, refusing allocations that would take the bytes live at once over `total`.
    pub const fn with_total_limit(self, total: usize) -> Self {
        Self { total, ..self }
    }

    /// Whether a request of `size` bytes is allowed; records it when it is not.
    fn allow(&self, size: usize) -> bool {
        if size > self.limit || LIVE.load(Ordering::Relaxed).saturating_add(size) > self.total {
            REFUSED.fetch_max(size, Ordering::SeqCst);
            false
        } else {
            true
        }
    }

    /// A new block of `layout` from `allocate` when the limits allow it (null otherwise),
    /// counted as live when it is not null.
    #[inline]
    fn counted(&self, layout: Layout, allocate: impl FnOnce() -> *mut u8) -> *mut u8 {
        if !self.allow(layout.size()) {
            return std::ptr::null_mut();
        }
        let ptr = allocate();
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }
}

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, or returns null
// (which `GlobalAlloc` allows: it signals an allocation failure); the counters are atomics, so
// calls from any thread are fine, and nothing here allocates.
unsafe impl GlobalAlloc for LimitAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller guarantees `layout` has a non-zero size, as `System.alloc` needs.
        self.counted(layout, || unsafe { System.alloc(layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        self.counted(layout, || unsafe { System.alloc_zeroed(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator (so from `System`) with
        // this `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.allow(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller guarantees `ptr` came from this allocator (so from `System`) with
        // `layout`, and that `new_size` is non-zero and does not overflow when rounded up to the
        // alignment; on failure the old block stays valid, as `GlobalAlloc` requires.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        new
    }
}

/// The largest request refused since the last call (then resets it), if any.
pub fn take_refused() -> Option<usize> {
    match REFUSED.swap(0, Ordering::SeqCst) {
        0 => None,
        size => Some(size),
    }
}

/// The most bytes live at once since the last call; resets the mark to what is live now.
pub fn take_peak() -> usize {
    PEAK.swap(LIVE.load(Ordering::Relaxed), Ordering::Relaxed)
}
