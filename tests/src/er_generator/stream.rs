//! The records in arrival order. Record slots are numbered entity by entity
//! (an entity's records follow one another, in system order); a keyed
//! permutation maps arrival positions to slots, so systems and entities
//! arrive mixed while memory stays at one offset per entity. Record ids come
//! from a per-system counter in arrival order, scrambled by a second
//! permutation, so that neither their order nor their value tells which
//! records belong together.

use time::{Duration, OffsetDateTime};
use uuid::{Builder, Uuid};

use mdhub_schema::{ChangeEvent, Op, SCHEMA_VERSION};

use super::companies::{company, is_chinese};
use super::layout::{chinese_household, holders, household_of, is_company, nth_holder};
use super::people::person;
use super::render::{render, Entity};
use super::rng::{Permutation, Rng, Stream};
use super::{Profile, SYSTEM_REGIONS};

pub struct Records<'p> {
    p: &'p Profile,
    /// `offsets[e]`: slot of entity `e`'s first record; the last entry is the
    /// number of records.
    offsets: Vec<u64>,
    arrival: Permutation,
    record_ids: [Permutation; 3],
    counters: [u64; 3],
    id_width: usize,
    position: u64,
}

/// When the first record was observed; later ones follow about a second apart.
const START: OffsetDateTime = time::macros::datetime!(2025-01-06 08:00 UTC);

impl<'p> Records<'p> {
    pub fn new(p: &'p Profile) -> Records<'p> {
        let mut offsets = Vec::with_capacity(p.entities + 1);
        let mut total = 0u64;
        for e in 0..p.entities as u64 {
            offsets.push(total);
            total += u64::from(holder_mask(p, e).count_ones());
        }
        offsets.push(total);
        let n = p.entities as u64;
        let record_ids = [0, 1, 2].map(|s| Permutation::new(n, p.seed, Stream::RecordIds, s));
        Records {
            p,
            offsets,
            arrival: Permutation::new(total, p.seed, Stream::Arrival, 0),
            record_ids,
            counters: [0; 3],
            id_width: n.saturating_sub(1).to_string().len().max(6),
            position: 0,
        }
    }
}

fn holder_mask(p: &Profile, e: u64) -> u8 {
    let chinese = if is_company(p, e) {
        is_chinese(p, e)
    } else {
        chinese_household(p, household_of(p, e))
    };
    holders(p, e, chinese)
}

impl Iterator for Records<'_> {
    type Item = (ChangeEvent, u64);

    fn next(&mut self) -> Option<(ChangeEvent, u64)> {
        let total = *self.offsets.last().expect("one offset at least");
        if self.position >= total {
            return None;
        }
        let p = self.p;
        let slot = self.arrival.apply(self.position);
        let e = self.offsets.partition_point(|&o| o <= slot) - 1;
        let k = (slot - self.offsets[e]) as usize;
        let e = e as u64;
        let system = nth_holder(holder_mask(p, e), k);
        let entity = if is_company(p, e) {
            Entity::Company(company(p, e))
        } else {
            Entity::Person(person(p, e))
        };
        let mut rng = Rng::keyed(p.seed, Stream::Record, e, system as u64);
        let fields = render(p, &entity, system, &mut rng);

        let name = SYSTEM_REGIONS[system].0;
        let number = self.record_ids[system].apply(self.counters[system]);
        self.counters[system] += 1;
        let mut ids = Rng::keyed(p.seed, Stream::EventId, self.position, 0);
        let millis = self.position as i64 * 1000 + ids.below(1000) as i64;
        let observed_at = START + Duration::milliseconds(millis);
        let mut tail = [0u8; 10];
        tail[..8].copy_from_slice(&ids.next_u64().to_le_bytes());
        tail[8..].copy_from_slice(&ids.next_u64().to_le_bytes()[..2]);
        let unix_millis = (observed_at.unix_timestamp_nanos() / 1_000_000) as u64;
        let event_id: Uuid = Builder::from_unix_timestamp_millis(unix_millis, &tail).into_uuid();
        self.position += 1;
        let event = ChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id,
            system: name.to_string(),
            entity: "customer".to_string(),
            record_id: format!("{name}-{number:0width$}", width = self.id_width),
            op: Op::Upsert,
            fields,
            observed_at,
            base: None,
            caused_by: None,
        };
        Some((event, e))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let total = *self.offsets.last().expect("one offset at least");
        let left = (total - self.position) as usize;
        (left, Some(left))
    }
}
