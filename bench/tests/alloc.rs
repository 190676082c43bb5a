//! Zero allocations per steady-state tick and per ping on an open session.
//!
//! A counting global allocator (this test binary only) counts the allocation calls
//! made on this thread while the measured steps run. Counts are exact and do not
//! depend on the machine's noise.
// `GlobalAlloc` can only be implemented unsafely; the impl only forwards to the
// system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tether_bench::{ack_text, push_pool, send_id, OpenSession};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the slot is gone while the thread is being torn down.
    let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call forwards to `System` with the caller's own arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocation calls made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

/// An open session that has already pinged, been ponged, sent, been acked and
/// received pushes, so every reused queue has its capacity.
fn warm() -> OpenSession {
    let mut s = OpenSession::new();
    for _ in 0..4 {
        s.ping_pong();
        s.idle_tick();
    }
    for (i, push) in push_pool(4).into_iter().enumerate() {
        let id = send_id(i);
        let ack = ack_text(&id, i);
        assert!(s.send_ack(id, ack), "a direct send is written and acked");
        s.push(push);
    }
    s
}

#[test]
fn steady_state_ticks_do_not_allocate() {
    let mut s = warm();
    let n = allocations(|| {
        for _ in 0..1000 {
            s.idle_tick();
        }
    });
    assert_eq!(n, 0, "allocations in 1000 idle ticks");
}

#[test]
fn pings_and_pongs_do_not_allocate() {
    let mut s = warm();
    let mut actions = 0;
    let n = allocations(|| {
        for _ in 0..1000 {
            actions += s.ping_pong();
        }
    });
    assert!(actions >= 1000, "every watchdog tick pings ({actions} actions)");
    assert_eq!(n, 0, "allocations in 1000 watchdog pings and their pongs");
}

/// Not a zero claim, a record: what one push costs, so a regression shows.
#[test]
fn push_allocations_are_bounded() {
    let mut s = warm();
    let pool = push_pool(64);
    let texts: Vec<String> = pool.iter().skip(8).cloned().collect();
    let count = texts.len() as u64;
    let n = allocations(|| {
        for text in texts {
            s.push(text);
        }
    });
    let per_push = n / count;
    eprintln!("allocations per push handled end to end: {per_push} ({n} for {count})");
    assert!(per_push <= 16, "{per_push} allocations per push");
}
