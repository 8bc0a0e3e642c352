//! Which entity is a person or a company, which people share a household,
//! and which systems hold each entity. Each answer is a pure function of the
//! profile and the entity index, so any record can be rebuilt on its own.

use super::rng::{Rng, Stream};
use super::{Profile, SYSTEM_REGIONS};

/// Index of `oa` in `SYSTEM_REGIONS`.
pub const OA: usize = 2;

pub fn is_company(p: &Profile, e: u64) -> bool {
    Rng::keyed(p.seed, Stream::Kind, e, 0).chance(p.company_share)
}

/// The entity whose household person `e` belongs to: `e` itself, or an
/// earlier person (`e - 1`, and so on back) whose family `e` joined.
pub fn household_of(p: &Profile, e: u64) -> u64 {
    let mut h = e;
    while h > 0
        && !is_company(p, h - 1)
        && Rng::keyed(p.seed, Stream::JoinsHousehold, h, 0).chance(p.household_share)
    {
        h -= 1;
    }
    h
}

/// Whether the people of household `h` are Chinese (the household stream's
/// first draw; `people` reads it in the same order).
pub fn chinese_household(p: &Profile, h: u64) -> bool {
    Rng::keyed(p.seed, Stream::Household, h, 0).chance(p.chinese_share)
}

/// Bit `s` set: system `SYSTEM_REGIONS[s].0` holds entity `e`. Chinese people and
/// Chinese companies are held by `oa` more often.
pub fn holders(p: &Profile, e: u64, chinese: bool) -> u8 {
    let mut rng = Rng::keyed(p.seed, Stream::Systems, e, 0);
    let u = rng.unit();
    let count = if u < p.systems_share[0] {
        1
    } else if u < p.systems_share[0] + p.systems_share[1] {
        2
    } else {
        3
    };
    // Weights of crm, erp, oa; for two systems, of leaving that one out.
    let (one, two): ([f64; 3], [f64; 3]) = if chinese {
        ([0.2, 0.2, 0.6], [0.4, 0.4, 0.2])
    } else {
        ([0.45, 0.35, 0.2], [0.25, 0.25, 0.5])
    };
    let weighted = |w: [f64; 3], rng: &mut Rng| {
        let u = rng.unit() * (w[0] + w[1] + w[2]);
        if u < w[0] {
            0
        } else if u < w[0] + w[1] {
            1
        } else {
            2
        }
    };
    match count {
        1 => 1 << weighted(one, &mut rng),
        2 => 0b111 & !(1 << weighted(two, &mut rng)),
        _ => 0b111,
    }
}

/// The `k`-th system (by index) whose bit is set in `mask`.
pub fn nth_holder(mask: u8, k: usize) -> usize {
    (0..SYSTEM_REGIONS.len())
        .filter(|s| mask & (1 << s) != 0)
        .nth(k)
        .expect("k below the number of holders")
}
