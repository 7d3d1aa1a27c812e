//! A small deterministic PRNG for the reliability tests (xorshift64*): no
//! dependency, no allocation, reproducible from a seed printed on failure.

/// xorshift64* generator.
pub(crate) struct Prng(u64);

impl Prng {
    /// A generator from `seed` (any value; 0 is remapped).
    pub(crate) fn new(seed: u64) -> Prng {
        Prng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A size in `1..=max`.
    pub(crate) fn size(&mut self, max: usize) -> usize {
        1 + self.below(max as u64) as usize
    }

    #[allow(dead_code)] // not every test binary needs alignments
    /// A power-of-two alignment in `1..=max` (`max` a power of two).
    pub(crate) fn align(&mut self, max: usize) -> usize {
        1 << self.below(u64::from(max.trailing_zeros()) + 1)
    }
}

/// A `u64` knob from the environment variable `name`, else `default`.
#[allow(dead_code)] // not every test binary has knobs
pub(crate) fn knob(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .unwrap_or_else(|_| panic!("invalid value for env var '{name}': {v:?}")),
        _ => default,
    }
}
