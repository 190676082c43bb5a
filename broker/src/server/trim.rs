//! Giving memory back to the system after a wave of connections (X15).
//!
//! A wave of thousands of connections leaves the allocator holding their freed
//! buffers: glibc keeps freed memory in its arenas (one per worker thread) and only
//! returns the top of each heap by itself, so after the wave the resident size stays
//! near its peak. `malloc_trim(0)` walks every arena and hands every free page back.
//! It is called once the number of live connections has fallen to half of its peak
//! since the last call (and the peak was a wave, not a handful), so its cost is paid
//! once per wave, never per connection.

/// Connections below which a drop is not a wave worth trimming after.
const WAVE_MIN: usize = 64;

/// Tracks the peak of live connections and says when a wave has receded.
#[derive(Debug, Default)]
pub(crate) struct WaveTrim {
    peak: usize,
}

impl WaveTrim {
    /// Records the live connection count; returns true when memory was given back.
    pub fn observe(&mut self, live: usize) -> bool {
        self.peak = self.peak.max(live);
        if self.peak < WAVE_MIN || live > self.peak / 2 {
            return false;
        }
        self.peak = live;
        give_back()
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn give_back() -> bool {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::os::raw::c_int;
    }
    // SAFETY: malloc_trim takes no pointers, only releases free pages of glibc's own
    // heaps, and is documented MT-Safe (glibc manual, "Memory Allocation Tunables").
    unsafe { malloc_trim(0) != 0 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back() -> bool {
    false
}
