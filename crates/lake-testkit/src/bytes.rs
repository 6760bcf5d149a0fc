//! Deterministic pseudo-random bytes (xorshift64), so trees are reproducible and
//! their files neither compress nor dedupe by accident.

/// `n` bytes from `seed`: the same seed gives the same bytes.
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_seed_same_bytes_and_seeds_differ() {
        assert_eq!(super::bytes(3, 1000), super::bytes(3, 1000));
        assert_ne!(super::bytes(3, 1000), super::bytes(4, 1000));
        // Not a run of one value: a chunker or zstd would see through that.
        let b = super::bytes(5, 4096);
        assert!(b.iter().collect::<std::collections::HashSet<_>>().len() > 200);
    }
}
