//! Ids derived from inputs: golden ids, review task ids, update ids and
//! Automerge actors are functions of what the log holds, so that a replay
//! gives the same ids.
//!
//! A name is built from its parts with each part length-prefixed, never by
//! joining strings: joined with "/", record "r/4" and record "r" at
//! sequence 4 would give the same name, and two golden records one id.
//! With length prefixes, two different lists of parts always give two
//! different names, whatever characters a system, entity or record id
//! holds. The first part says what kind of id it is, so ids of different
//! kinds never share a name either.

use automerge::ActorId;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// One part of a derived name.
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    Text(&'a str),
    Number(u64),
    Id(Uuid),
}

impl<'a> From<&'a str> for Part<'a> {
    fn from(s: &'a str) -> Self {
        Part::Text(s)
    }
}

impl<'a> From<&'a String> for Part<'a> {
    fn from(s: &'a String) -> Self {
        Part::Text(s)
    }
}

impl From<u64> for Part<'_> {
    fn from(n: u64) -> Self {
        Part::Number(n)
    }
}

impl From<Uuid> for Part<'_> {
    fn from(id: Uuid) -> Self {
        Part::Id(id)
    }
}

/// The bytes of a name: per part, a type byte, its length as 8 bytes big
/// endian, and its bytes.
pub fn name(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let (kind, bytes): (u8, &[u8]) = match part {
            Part::Text(s) => (b't', s.as_bytes()),
            Part::Number(n) => {
                out.push(b'n');
                out.extend_from_slice(&8u64.to_be_bytes());
                out.extend_from_slice(&n.to_be_bytes());
                continue;
            }
            Part::Id(id) => (b'u', id.as_bytes()),
        };
        out.push(kind);
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// A UUIDv5 in `namespace` over the parts.
pub fn uuid(namespace: &Uuid, parts: &[Part<'_>]) -> Uuid {
    Uuid::new_v5(namespace, &name(parts))
}

/// An Automerge actor over the parts: the same bytes in every hub, every
/// replay.
pub fn actor(parts: &[Part<'_>]) -> ActorId {
    let digest = Sha256::digest(name(parts));
    ActorId::from(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_that_join_to_the_same_text_give_different_names() {
        let a = name(&["source".into(), "crm".into(), "r/4".into()]);
        let b = name(&["source".into(), "crm".into(), "r".into(), "4".into()]);
        let c = name(&["source".into(), "crm".into(), "r".into(), 4u64.into()]);
        let d = name(&["source".into(), "crm/r".into(), "4".into()]);
        let all = [&a, &b, &c, &d];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn an_empty_part_is_not_a_missing_part() {
        assert_ne!(
            name(&["update".into(), "".into()]),
            name(&["update".into()])
        );
        assert_ne!(name(&["".into(), "".into()]), name(&["".into()]));
    }
}
