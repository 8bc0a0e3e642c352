//! Picks the golden value among concurrent candidates. Deterministic: it
//! reads only the candidates (never the clock, never Automerge's internal op
//! order, which depends on arrival order), and every tie has a last
//! tie-breaker (system name, then event id).

use std::cmp::Ordering;

use mdhub_schema::Survivorship;
use serde_json::Value;

use super::candidate::Candidate;

/// Index of the winning candidate. `candidates` must not be empty.
pub fn pick(policy: Survivorship, priority: &[String], candidates: &[Candidate]) -> usize {
    assert!(!candidates.is_empty(), "survivorship needs a candidate");
    let rank = |c: &Candidate| {
        priority
            .iter()
            .position(|s| *s == c.system)
            .unwrap_or(usize::MAX)
    };
    // `better(a, b)` is Greater when a should win over b.
    let better = |a: &Candidate, b: &Candidate| -> Ordering {
        let primary = match policy {
            Survivorship::SourcePriority => rank(b).cmp(&rank(a)),
            Survivorship::MostRecent => a.observed_at_ns.cmp(&b.observed_at_ns),
            Survivorship::MostComplete => completeness(&a.value)
                .cmp(&completeness(&b.value))
                .then(a.observed_at_ns.cmp(&b.observed_at_ns)),
        };
        // Final tie-breakers: smaller system name, then smaller event id.
        primary
            .then_with(|| b.system.cmp(&a.system))
            .then_with(|| b.event_id.cmp(&a.event_id))
    };
    let mut best = 0;
    for i in 1..candidates.len() {
        if better(&candidates[i], &candidates[best]) == Ordering::Greater {
            best = i;
        }
    }
    best
}

/// How much a value says: null < empty < longer.
fn completeness(v: &Value) -> usize {
    match v {
        Value::Null => 0,
        Value::String(s) => 1 + s.trim().chars().count(),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn c(system: &str, v: &str, t: i64) -> Candidate {
        Candidate {
            value: Value::String(v.into()),
            system: system.into(),
            event_id: Uuid::from_u128(t as u128),
            observed_at_ns: t,
        }
    }

    #[test]
    fn policies() {
        let cands = [c("crm", "Ann", 5), c("erp", "Annabel", 3), c("oa", "A.", 9)];
        let prio = vec!["erp".to_string(), "crm".to_string()];
        assert_eq!(pick(Survivorship::SourcePriority, &prio, &cands), 1);
        assert_eq!(pick(Survivorship::MostRecent, &prio, &cands), 2);
        assert_eq!(pick(Survivorship::MostComplete, &prio, &cands), 1);
    }

    #[test]
    fn ties_do_not_depend_on_order() {
        let a = c("crm", "x", 5);
        let b = c("erp", "y", 5);
        let w1 = pick(Survivorship::MostRecent, &[], &[a.clone(), b.clone()]);
        let w2 = pick(Survivorship::MostRecent, &[], &[b, a]);
        assert_eq!(w1, 0);
        assert_eq!(w2, 1, "crm wins the tie by name either way");
    }
}
