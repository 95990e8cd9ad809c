//! The counting global allocator: per thread, the bytes allocated and not yet freed since
//! the last [`reset`], their peak, and the largest single allocation. A binary that wants
//! the figures installs [`Counting`] as its `#[global_allocator]` (the `phxq-fuzz` binary
//! and the short-mode test do); [`installed`] tells whether it is.
//!
//! Counts are per thread so that tests running on parallel threads do not see each
//! other's allocations. Memory freed on another thread than the one that allocated it is
//! counted on the freeing thread (harmless here: decoders do not hand memory across
//! threads). Allocations made by C libraries through `malloc` (the lz4 and zstd codecs'
//! contexts) do not go through Rust's allocator and are not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Wraps the system allocator and counts what the current thread allocates.
pub struct Counting;

struct State {
    /// Bytes allocated minus bytes freed since [`reset`] (negative when older memory is freed).
    live: Cell<isize>,
    peak: Cell<isize>,
    largest: Cell<usize>,
}

thread_local! {
    static STATE: State = const {
        State {
            live: Cell::new(0),
            peak: Cell::new(0),
            largest: Cell::new(0),
        }
    };
}

fn grew(by: usize) {
    let _ = STATE.try_with(|s| {
        let live = s.live.get() + by as isize;
        s.live.set(live);
        if live > s.peak.get() {
            s.peak.set(live);
        }
        if by > s.largest.get() {
            s.largest.set(by);
        }
    });
}

fn shrank(by: usize) {
    let _ = STATE.try_with(|s| s.live.set(s.live.get() - by as isize));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        shrank(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            // The new block is the allocation that counts; the old one is gone.
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

/// What the current thread allocated since the last [`reset`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Most bytes live at once (not counting what was live at the reset).
    pub peak: usize,
    /// The largest single allocation (or reallocation's new size).
    pub largest: usize,
}

/// Starts counting afresh on this thread.
pub fn reset() {
    STATE.with(|s| {
        s.live.set(0);
        s.peak.set(0);
        s.largest.set(0);
    });
}

/// The figures since the last [`reset`] on this thread.
pub fn usage() -> Usage {
    STATE.with(|s| Usage {
        peak: s.peak.get().max(0) as usize,
        largest: s.largest.get(),
    })
}

/// Whether [`Counting`] is this process's global allocator (an allocation is seen).
pub fn installed() -> bool {
    reset();
    let probe = std::hint::black_box(vec![0u8; 4096]);
    let seen = usage().largest >= 4096;
    drop(probe);
    seen
}
