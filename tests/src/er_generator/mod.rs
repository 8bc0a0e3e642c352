//! Entity-resolution test data with ground truth: people and companies held
//! by up to three systems (`crm`, `erp`, `oa`), each system's record written
//! the way that system writes it and damaged the way data entry damages it,
//! plus pairwise precision/recall/F1 of a clustering against the truth.
//!
//! Everything is a pure function of the `Profile` (seed included): the same
//! profile gives the same events, byte for byte, on every machine.
//!
//! Layout:
//! - `rng`: keyed splitmix64 streams and a keyed permutation.
//! - `names`, `places`: name pools (Chinese with pinyin), nickname groups;
//!   countries, cities, streets, postcodes, phone numbering.
//! - `layout`: person or company, households, which systems hold an entity.
//! - `people`, `companies`: an entity's true values.
//! - `phone`, `corrupt`: ways of writing numbers; typing damage to text.
//! - `render`: one entity as one system holds it, corruptions applied.
//! - `stream`: records in shuffled arrival order, with record and event ids.
//! - `eval`: pairwise scores from cluster contingency counts.

mod companies;
mod corrupt;
mod eval;
mod layout;
pub mod names;
mod people;
mod phone;
mod places;
mod render;
pub mod rng;
mod stream;

use std::collections::BTreeMap;

use mdhub_schema::ChangeEvent;

pub use eval::{clusters, derive, pairwise_f1, PairwiseScore};

/// Each system and the region its users dial from: phones it holds without
/// a country code are numbers of that region.
pub const SYSTEM_REGIONS: [(&str, &str); 3] = [("crm", "DE"), ("erp", "DE"), ("oa", "CN")];

/// What to generate. Rates are probabilities per record (per value for the
/// text damage), applied independently.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub entities: usize,
    pub seed: u64,
    /// Share of entities that are companies (the rest are people).
    pub company_share: f64,
    /// Share of entities held by one, two and three systems; sums to 1.
    pub systems_share: [f64; 3],
    /// Share of people of Chinese origin (60 % of them live in China).
    /// They, and Chinese companies, are held by `oa` more often.
    pub chinese_share: f64,
    /// Chance that a person joins the household of the person before:
    /// same family name, address and landline, own given name, birth date,
    /// mobile and e-mail.
    pub household_share: f64,
    /// A Chinese person's or company's name (and a Chinese address)
    /// written in Han characters by `oa`; elsewhere, and otherwise, in
    /// pinyin or English.
    pub han_script_rate: f64,
    /// One substituted, deleted or inserted letter in a name, street or city.
    pub typo_rate: f64,
    /// Two adjacent letters swapped in a name, street or city.
    pub transposition_rate: f64,
    /// `ü` written `ue` (or `u`), `ß` written `ss`, where there is one.
    pub transliteration_rate: f64,
    /// A nickname (Bill, Sepp) instead of a given name that has one.
    pub nickname_rate: f64,
    /// Given and family name entered the wrong way round.
    pub swapped_names_rate: f64,
    /// E-mail, phone, mobile, birth date, postcode or tax id left empty
    /// (null), per field.
    pub missing_rate: f64,
    /// A phone written internationally although the system's region is
    /// the number's country (numbers of other countries always are).
    pub international_phone_rate: f64,
    /// E-mail in capitals or with capitalized parts.
    pub email_case_rate: f64,
    /// A different address of the same person or company (private instead
    /// of work, `einkauf@` instead of `info@`).
    pub other_email_rate: f64,
    /// Company name abbreviated, without or with a spelled-out legal form,
    /// transliterated or in capitals.
    pub company_name_variant_rate: f64,
    /// Website without `https://`, without `www.`, with a trailing slash.
    pub website_variant_rate: f64,
    /// `Hauptstraße` written `Hauptstr.`.
    pub street_abbreviation_rate: f64,
    /// Birth date day and month swapped (where both could be a month).
    pub day_month_swap_rate: f64,
    /// Birth date as `01.03.1985` or `03/01/1985` instead of ISO.
    pub date_format_rate: f64,
    /// Country as a name (`Deutschland`, `中国`, `UK`) instead of its code.
    pub country_name_rate: f64,
    /// One value no cleanser accepts (`n/a` as phone, an e-mail without
    /// `@`, 30 February), per record: the hub keeps it and flags it.
    pub invalid_value_rate: f64,
}

impl Profile {
    /// The profile the ER tests and benchmarks use: mostly German data, a
    /// Chinese minority, corruption at rates seen in real CRM/ERP exports.
    pub fn default_profile(entities: usize) -> Profile {
        Profile {
            entities,
            seed: 0x6D64_6875_6265_7231,
            company_share: 0.3,
            systems_share: [0.3, 0.45, 0.25],
            chinese_share: 0.12,
            household_share: 0.06,
            han_script_rate: 0.8,
            typo_rate: 0.05,
            transposition_rate: 0.02,
            transliteration_rate: 0.1,
            nickname_rate: 0.25,
            swapped_names_rate: 0.02,
            missing_rate: 0.08,
            international_phone_rate: 0.35,
            email_case_rate: 0.2,
            other_email_rate: 0.08,
            company_name_variant_rate: 0.5,
            website_variant_rate: 0.5,
            street_abbreviation_rate: 0.2,
            day_month_swap_rate: 0.01,
            date_format_rate: 0.2,
            country_name_rate: 0.2,
            invalid_value_rate: 0.02,
        }
    }
}

/// A generated dataset.
pub struct ErDataset {
    /// Upserts (full images), in arrival order.
    pub events: Vec<ChangeEvent>,
    /// (system, record_id) → entity index.
    pub truth: BTreeMap<(String, String), u64>,
    /// System → default phone region (`SYSTEM_REGIONS`).
    pub system_regions: BTreeMap<String, String>,
}

/// The `[system.<name>]` tables of a hub config for the generator's
/// systems, each with its default phone region.
pub fn systems_toml() -> String {
    SYSTEM_REGIONS
        .iter()
        .map(|(system, region)| format!("[system.{system}]\nregion = \"{region}\"\n"))
        .collect()
}

/// The records one at a time, in arrival order, with their entity: for
/// runs too large to hold (memory: 8 bytes per entity).
pub fn generate_iter(profile: &Profile) -> impl Iterator<Item = (ChangeEvent, u64)> + '_ {
    stream::Records::new(profile)
}

/// The whole dataset in memory.
pub fn generate(profile: &Profile) -> ErDataset {
    let (events, entities): (Vec<ChangeEvent>, Vec<u64>) = generate_iter(profile).unzip();
    // Collected at once, the map is sorted and built in bulk: much faster
    // than a million inserts in arrival order.
    let truth = events
        .iter()
        .zip(entities)
        .map(|(e, entity)| ((e.system.clone(), e.record_id.clone()), entity))
        .collect();
    ErDataset {
        events,
        truth,
        system_regions: SYSTEM_REGIONS
            .iter()
            .map(|(s, r)| (s.to_string(), r.to_string()))
            .collect(),
    }
}
