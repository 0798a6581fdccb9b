//! Helpers for unit tests.

/// A deterministic xorshift generator: reproducible random inputs without a
/// crate.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// The next value (never 0 for a non-zero seed).
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// One of `items`, uniformly.
    pub(crate) fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        let n = items.len().max(1) as u64;
        items[usize::try_from(self.next() % n).unwrap_or(0)]
    }
}
