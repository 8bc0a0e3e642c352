//! Randomness without state shared between records: splitmix64 (the same
//! generator as `fixtures`), keyed by seed and a path such as (entity, system).
//! Any record can then be rebuilt on its own, which is what lets the stream
//! emit records in a shuffled order without holding the dataset.

/// splitmix64's output function: a good 64-bit mixer.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a keyed stream is for, so that streams of one entity never coincide.
#[derive(Clone, Copy)]
pub enum Stream {
    Kind = 1,
    JoinsHousehold = 2,
    Household = 3,
    Person = 4,
    Company = 5,
    Systems = 6,
    Record = 7,
    Arrival = 8,
    RecordIds = 9,
    EventId = 10,
}

pub struct Rng(u64);

impl Rng {
    /// A plain stream from `seed` (no key): for a test's own sequence of
    /// choices.
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The stream `what` of item `index` (and `sub`, e.g. the system) under `seed`.
    pub fn keyed(seed: u64, what: Stream, index: u64, sub: u64) -> Rng {
        let mut h = mix(seed ^ 0x6D64_6875_625F_6572);
        for part in [what as u64, index, sub] {
            h = mix(h.wrapping_add(0x9E37_79B9_7F4A_7C15) ^ part);
        }
        Rng(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is far below what any
    /// test could see.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An index into `0..n` where the front is much more likely than the back
    /// (density ~ 1/sqrt): name pools are ordered by frequency, so common
    /// names recur the way Thomas Müller and 王伟 do.
    pub fn skewed(&mut self, n: usize) -> usize {
        let u = self.unit();
        ((u * u * n as f64) as usize).min(n - 1)
    }

    /// `n` decimal digits, as a number below 10^n.
    pub fn digits(&mut self, n: u32) -> u64 {
        self.next_u64() % 10u64.pow(n)
    }
}

/// A keyed bijection of `0..n`: a balanced Feistel network on the smallest
/// even power of two that holds `n`, walked until it lands inside `0..n`.
/// It turns positions into shuffled positions in O(1) memory.
pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    pub fn new(n: u64, seed: u64, what: Stream, sub: u64) -> Permutation {
        let mut half_bits = 1;
        while half_bits < 32 && (1u64 << (2 * half_bits)) < n {
            half_bits += 1;
        }
        let mut rng = Rng::keyed(seed, what, n, sub);
        Permutation {
            n,
            half_bits,
            keys: [
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64(),
            ],
        }
    }

    /// The image of `x` (`x < n`).
    pub fn apply(&self, x: u64) -> u64 {
        let mut y = x;
        loop {
            y = self.round_trip(y);
            if y < self.n {
                return y;
            }
        }
    }

    fn round_trip(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys {
            let next = left ^ (mix(right ^ key) & mask);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_bijections() {
        for n in [1u64, 2, 3, 17, 1000, 4097] {
            let p = Permutation::new(n, 7, Stream::Arrival, 0);
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = p.apply(x) as usize;
                assert!(!seen[y], "n={n}: {y} twice");
                seen[y] = true;
            }
        }
    }

    #[test]
    fn keyed_streams_differ() {
        let a = Rng::keyed(1, Stream::Person, 5, 0).next_u64();
        assert_ne!(a, Rng::keyed(1, Stream::Person, 6, 0).next_u64());
        assert_ne!(a, Rng::keyed(1, Stream::Company, 5, 0).next_u64());
        assert_ne!(a, Rng::keyed(2, Stream::Person, 5, 0).next_u64());
        assert_eq!(a, Rng::keyed(1, Stream::Person, 5, 0).next_u64());
    }
}
