//! HOT (prefetch) / COLD (huge-page advice) — memory hints for the risk tables.
//! - [`prefetch`]: the risk check asks for every line it is about to touch (the account's
//!   state, its duplicate ring, the position slot) as soon as it knows the indices, so that
//!   the cache misses overlap instead of following one another.
//! - [`with_huge_pages`]: the big tables (account states, duplicate rings, positions) are
//!   allocated with `madvise(MADV_HUGEPAGE)` before they are first written, so that with
//!   transparent huge pages in `madvise` (or `always`) mode a random lookup costs no TLB miss
//!   and page walk on top of its cache miss.
//!
//! Why `unsafe` is allowed here: `_mm_prefetch` is declared `#[target_feature(enable = "sse")]`,
//! so calling it needs an `unsafe` block even though SSE is part of the x86_64 baseline; and
//! `madvise` is a libc call. Neither changes what memory holds.
#![allow(unsafe_code)]

/// Asks the CPU to start loading the cache line at `p` into L1 (no effect on semantics).
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE, the intrinsic's target feature, is in the x86_64 baseline, so every CPU
    // this code runs on has it; a prefetch of any address (even an invalid one) is a hint that
    // cannot fault or change memory.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A vector of `n` copies of `value`, its pages advised as huge-page candidates before the
/// first write (construction only; a failed or unsupported advice changes nothing).
pub fn with_huge_pages<T: Clone>(n: usize, value: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge(
        v.as_ptr().cast(),
        n.saturating_mul(core::mem::size_of::<T>()),
    );
    v.resize(n, value);
    v
}

/// An empty vector with room for `n`, advised as [`with_huge_pages`] does.
pub fn with_capacity_huge<T>(n: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(n);
    advise_huge(
        v.as_ptr().cast(),
        n.saturating_mul(core::mem::size_of::<T>()),
    );
    v
}

/// `madvise(MADV_HUGEPAGE)` over the whole 2 MiB pages inside `[p, p + len)`.
fn advise_huge(p: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < 2 * HUGE {
        return;
    }
    let start = (p as usize).next_multiple_of(HUGE);
    let end = (p as usize + len) / HUGE * HUGE;
    if end <= start {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: the range lies inside the allocation of `len` bytes at `p` (rounded inwards to
    // whole huge pages); MADV_HUGEPAGE is advice only — it never changes the range's contents
    // or validity, and an error (e.g. THP disabled) is ignored.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}
