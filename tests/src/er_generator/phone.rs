//! Phone numbers and the ways people write them: nationally only where the
//! system's default region is the number's country (elsewhere a national
//! number would be read with the wrong country code), internationally with
//! `+`, `00`, or the German-style `+49 (0)30`.

use super::places::{City, Country};
use super::rng::Rng;

pub struct Phone {
    pub country: &'static Country,
    /// Area code, or the mobile network prefix.
    pub prefix: &'static str,
    /// The subscriber digits.
    pub rest: String,
    /// National numbers carry the trunk `0` (not Chinese mobiles).
    pub trunk: bool,
}

impl Phone {
    pub fn landline(country: &'static Country, city: &'static City, rng: &mut Rng) -> Phone {
        Phone {
            country,
            prefix: city.area_code,
            rest: subscriber(country.landline_len - city.area_code.len(), rng),
            trunk: true,
        }
    }

    pub fn mobile(country: &'static Country, rng: &mut Rng) -> Phone {
        let prefix = *rng.pick(country.mobile_prefixes);
        Phone {
            country,
            prefix,
            rest: subscriber(country.mobile_len - prefix.len(), rng),
            trunk: country.mobile_trunk,
        }
    }

    /// The number as a system in `region` writes it; `international` asks
    /// for an international form even where a national one would do.
    pub fn written(&self, region: &str, international: bool, rng: &mut Rng) -> String {
        let (p, s) = (self.prefix, self.rest.as_str());
        let cc = self.country.calling_code;
        if international || region != self.country.code {
            return match rng.below(5) {
                0 => format!("+{cc} {p} {s}"),
                1 => format!("00{cc}{p}{s}"),
                2 => format!("+{cc}{p}{s}"),
                3 if self.trunk => format!("+{cc} (0){p} {s}"),
                _ => format!("+{cc}-{p}-{s}"),
            };
        }
        let (head, tail) = s.split_at(s.len() / 2);
        if !self.trunk {
            return match rng.below(3) {
                0 => format!("{p} {head} {tail}"),
                1 => format!("{p}{s}"),
                _ => format!("{p}-{head}-{tail}"),
            };
        }
        match rng.below(5) {
            0 => format!("0{p} {s}"),
            1 => format!("0{p}/{s}"),
            2 => format!("(0{p}) {head}-{tail}"),
            3 => format!("0{p}{s}"),
            _ => format!("0{p}-{s}"),
        }
    }
}

/// `len` digits not starting with 0 or 1 (those would read as trunk or
/// service prefixes).
fn subscriber(len: usize, rng: &mut Rng) -> String {
    let first = 2 + rng.below(8) as u64;
    let tail = rng.digits(len as u32 - 1);
    format!("{first}{tail:0width$}", width = len - 1)
}
