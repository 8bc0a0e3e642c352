//! Field comparators and name tools for entity resolution: pure functions
//! from two field values to a similarity in [0, 1], and keys for blocking.
//!
//! Inputs are cleansed strings (trimmed, NFKC) in any case. Everything here
//! is deterministic, with no clock, randomness or hash-map iteration in any
//! output, because the hub calls these while replaying its log.
//!
//! - `strings`: Jaro-Winkler and Levenshtein similarity, case-insensitive.
//! - `company`: company names without legal forms, as sets of words.
//! - `dates`: ISO dates with typo-aware scores.
//! - `names`: given names (nicknames, initials), person and full names
//!   (swapped parts, umlaut spellings, Han vs pinyin).
//! - `nicknames`: the given-name variant table.
//! - `pinyin`: Han characters to pinyin, surname-aware.
//! - `phonetic`: sound-alike keys.
//! - `email`: e-mail similarity and company web domains.
//! - `fold`: case, accent and punctuation folding shared by the above.

mod company;
mod dates;
mod email;
mod fold;
mod names;
mod nicknames;
mod phonetic;
mod pinyin;
mod strings;

pub use company::{company_key, company_key_similarity, company_similarity};
pub use dates::{date_similarity, day_month_swapped, days_apart, other_year};
pub use email::{email_similarity, web_domain};
pub use names::{
    canonical_given_name, full_name_similarity, given_name_similarity, person_name_similarity,
};
pub use phonetic::sound_key;
pub use pinyin::han_to_pinyin;
pub use strings::{jaro_winkler, levenshtein_similarity};
