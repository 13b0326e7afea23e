//! Byte-level mutations of seed inputs, from a seeded RNG (one seed replays a run).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Values that sit on boundaries parsers get wrong: sizes of 0 and 1, signed and unsigned limits.
pub const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

/// Mutates byte strings: bit and byte flips, boundary integers (1, 2, 4 or 8 bytes, little or
/// big endian), small arithmetic, inserted, deleted, duplicated and copied ranges, splices with
/// another input, truncation. Several mutations are stacked per call.
#[derive(Debug)]
pub struct Mutator {
    rng: StdRng,
    max_len: usize,
}

impl Mutator {
    /// A mutator whose outputs never exceed `max_len` bytes.
    pub fn new(seed: u64, max_len: usize) -> Self {
        Self { rng: StdRng::seed_from_u64(seed), max_len: max_len.max(1) }
    }

    /// The random generator (to pick inputs from the same stream).
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Applies 1, 2, 4 or 8 mutations to `input`; `other` is a second input to splice with.
    pub fn mutate(&mut self, input: &mut Vec<u8>, other: &[u8]) {
        let n = 1 << self.rng.random_range(0..4);
        for _ in 0..n {
            self.mutate_once(input, other);
        }
        input.truncate(self.max_len);
    }

    fn pos(&mut self, len: usize) -> usize {
        if len == 0 {
            0
        } else {
            self.rng.random_range(0..len)
        }
    }

    /// A range `(start, len)` inside `len` bytes, short more often than long.
    fn range(&mut self, len: usize) -> (usize, usize) {
        let start = self.pos(len);
        let room = len - start;
        let max = if self.rng.random_bool(0.8) { room.min(16) } else { room };
        (start, if max == 0 { 0 } else { self.rng.random_range(1..=max) })
    }

    fn mutate_once(&mut self, input: &mut Vec<u8>, other: &[u8]) {
        let len = input.len();
        match self.rng.random_range(0..11) {
            0 if len > 0 => {
                let i = self.pos(len);
                input[i] ^= 1 << self.rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = self.pos(len);
                input[i] = self.rng.random();
            }
            2 if len > 0 => {
                let value = INTERESTING[self.rng.random_range(0..INTERESTING.len())];
                let value = if self.rng.random_bool(0.2) { value.wrapping_neg() } else { value };
                let width = [1, 2, 4, 8][self.rng.random_range(0..4)];
                // The low `width` bytes of the value, in either byte order.
                let (le, be) = (value.to_le_bytes(), value.to_be_bytes());
                let bytes = if self.rng.random_bool(0.5) { &le[..width] } else { &be[8 - width..] };
                let at = self.pos(len);
                let end = (at + width).min(len);
                input[at..end].copy_from_slice(&bytes[..end - at]);
            }
            3 if len > 0 => {
                let i = self.pos(len);
                let delta: i8 = self.rng.random_range(-16..=16);
                input[i] = input[i].wrapping_add_signed(delta);
            }
            4 => {
                let n = self.rng.random_range(1..=16);
                let at = self.pos(len + 1);
                let fill: Vec<u8> = if self.rng.random_bool(0.5) {
                    (0..n).map(|_| self.rng.random()).collect()
                } else {
                    vec![self.rng.random(); n]
                };
                input.splice(at..at, fill);
            }
            5 if len > 0 => {
                let (start, n) = self.range(len);
                input.drain(start..start + n);
            }
            6 if len > 0 => {
                let (start, n) = self.range(len);
                let copy = input[start..start + n].to_vec();
                let at = self.pos(len + 1);
                let times = if self.rng.random_bool(0.9) { 1 } else { self.rng.random_range(2..64) };
                for _ in 0..times {
                    input.splice(at..at, copy.iter().copied());
                }
            }
            7 if len > 1 => {
                let (start, n) = self.range(len);
                let to = self.pos(len - n + 1);
                input.copy_within(start..start + n, to);
            }
            8 if !other.is_empty() => {
                let cut = self.pos(len + 1);
                let from = self.pos(other.len());
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            9 if len > 0 => {
                let keep = self.pos(len);
                input.truncate(keep);
            }
            10 if !other.is_empty() && len > 0 => {
                let (start, n) = self.range(other.len());
                let at = self.pos(len);
                let end = (at + n).min(len);
                input[at..end].copy_from_slice(&other[start..start + (end - at)]);
            }
            _ => {
                let i = self.pos(len + 1);
                input.insert(i, self.rng.random());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutator_replays_from_its_seed_and_respects_the_length_limit() {
        let run = |seed| {
            let mut m = Mutator::new(seed, 64);
            let mut input = b"hello, fuzzer".to_vec();
            let mut seen = Vec::new();
            for _ in 0..500 {
                m.mutate(&mut input, b"other input");
                assert!(input.len() <= 64);
                seen.push(input.clone());
            }
            seen
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
