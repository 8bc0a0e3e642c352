//! Event ids of captured changes, derived from where the change was read.
//!
//! A source read twice from the same place (after a crash before the cursor
//! was saved) hands the runner the same transaction with the same
//! `position`: the events get the same ids, and the hub keeps one copy by
//! event id. The ids stay UUIDv7 (time-ordered, as the contract asks): the
//! time part is the change's own time, the rest a hash of the system, the
//! position and the change's index in its transaction.

use time::OffsetDateTime;
use uuid::{Builder, Uuid};

/// Namespace of the hashed part; any fixed UUID would do.
const NAMESPACE: Uuid = Uuid::from_u128(0x6d64_6875_622d_6576_656e_742d_6964_0001);

/// The id of the `index`-th change of the transaction at `position`.
pub fn captured(system: &str, position: &str, index: usize, at: OffsetDateTime) -> Uuid {
    derive(&["captured", system, position, &index.to_string()], at)
}

/// The id of the change event that reports a record the connector inserted
/// for a golden record, so the hub links it: one per golden record and key.
pub fn inserted(system: &str, golden_id: Uuid, record_id: &str, at: OffsetDateTime) -> Uuid {
    derive(&["inserted", system, &golden_id.to_string(), record_id], at)
}

fn derive(parts: &[&str], at: OffsetDateTime) -> Uuid {
    // Length-prefixed, so ("a.b", "c") and ("a", "b.c") differ.
    let mut name = Vec::new();
    for part in parts {
        name.extend_from_slice(&(part.len() as u64).to_be_bytes());
        name.extend_from_slice(part.as_bytes());
    }
    let hashed = Uuid::new_v5(&NAMESPACE, &name);
    let mut random = [0u8; 10];
    random.copy_from_slice(&hashed.as_bytes()[6..16]);
    let millis = (at.unix_timestamp_nanos() / 1_000_000).clamp(0, (1 << 48) - 1) as u64;
    Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_place_gives_the_same_id_and_another_place_another() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("a time");
        let a = captured("erp", "0/16B3748", 0, at);
        assert_eq!(a, captured("erp", "0/16B3748", 0, at));
        assert_eq!(a.get_version_num(), 7);
        assert_ne!(a, captured("erp", "0/16B3748", 1, at));
        assert_ne!(a, captured("crm", "0/16B3748", 0, at));
        assert_ne!(captured("a.b", "c", 0, at), captured("a", "b.c", 0, at));
        assert_ne!(a, inserted("erp", a, "0/16B3748", at));
        let later = captured("erp", "0/16B3749", 0, at + time::Duration::seconds(1));
        assert!(later > a, "ids sort by the change's time");
    }

    #[test]
    fn times_outside_the_v7_range_are_clamped_not_a_panic() {
        let early = OffsetDateTime::UNIX_EPOCH - time::Duration::days(1);
        assert_eq!(captured("s", "p", 0, early).get_version_num(), 7);
    }
}
