//! A forward pass formats no strings: layer names are built once, with the model.
//!
//! Strings (like every `Vec<u8>`) are allocated with alignment 1; tensors, shapes and reference
//! counts are aligned to at least 4. The only other alignment-1 allocations of a forward pass are
//! the one-byte boxes candle makes for each custom op whose settings fit in a byte (an
//! activation kind), while a layer name has at least two bytes (`fc`). This test binary's
//! allocator counts alignment-1 allocations of two bytes or more made by the test's own thread
//! while a forward pass runs, so a `format!` in a forward path fails it (checked: putting the
//! `format!` back into ResNet's block forward makes it count 16 per pass).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device, Tensor};
use candle_nn::ModuleT;
use ember_layers::ParamStore;
use ember_zoo::{build_with, ModelOptions};

struct CountingAlloc;

static BYTE_ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter only reads the
// layout and a thread-local flag (`try_with`, so a thread being torn down is not counted and
// nothing panics inside the allocator).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() == 1 && layout.size() >= 2 && COUNTING.try_with(Cell::get).unwrap_or(false) {
            BYTE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is the system's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() == 1 && layout.size() >= 2 && COUNTING.try_with(Cell::get).unwrap_or(false) {
            BYTE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for `dealloc`; `new_size` is the caller's, per `GlobalAlloc::realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Alignment-1 allocations made by this thread while `f` runs.
fn byte_allocations(f: impl FnOnce()) -> usize {
    let before = BYTE_ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    BYTE_ALLOCS.load(Ordering::Relaxed) - before
}

fn forward_allocations(name: &str, input: (usize, usize, usize)) -> (usize, usize) {
    let store = ParamStore::new(0, &Device::Cpu);
    let options = ModelOptions { input, classes: 10, ..ModelOptions::mnist() };
    let net = build_with(name, &options, store.var_builder(DType::F32)).unwrap();
    let (c, h, w) = input;
    let xs = Tensor::rand(0f32, 1.0, (2, c, h, w), &Device::Cpu).unwrap();
    // A first pass in each mode outside the window: lazily initialised state (thread pools,
    // caches; candle reads the CPU list from /sys once) is not the forward pass's doing.
    net.forward_t(&xs, true).unwrap();
    net.forward_t(&xs, false).unwrap();
    let train = byte_allocations(|| {
        net.forward_t(&xs, true).unwrap();
    });
    let eval = byte_allocations(|| {
        net.forward_t(&xs, false).unwrap();
    });
    (train, eval)
}

#[test]
fn counter_sees_a_formatted_string() {
    let n = byte_allocations(|| {
        std::hint::black_box(format!("layer{}.{}", std::hint::black_box(1), std::hint::black_box(0)));
    });
    assert_eq!(n, 1);
}

#[test]
fn resnet18_forward_allocates_no_strings() {
    assert_eq!(forward_allocations("resnet18", (3, 32, 32)), (0, 0));
}

#[test]
fn efficientnet_lite0_forward_allocates_no_strings() {
    assert_eq!(forward_allocations("efficientnet-lite0", (3, 32, 32)), (0, 0));
}
