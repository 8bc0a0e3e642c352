//! The in-process bus: the same pipeline core without NATS, for `mdhub demo`,
//! single-process runs and tests. Events wait in an inbox; `pump` ingests
//! them and routes what the hub publishes to per-system outboxes, the golden
//! feed and the dead-letter list, as the NATS subjects would.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use mdhub_schema::{ChangeEvent, GoldenChange, GoldenUpdate, Rejection};

use crate::hub::{Hub, Inbound, IngestOutcome};
use crate::log::LogError;
use crate::state::Outbound;

#[derive(Default)]
pub struct MemoryBus {
    inbox: VecDeque<Inbound>,
    outboxes: BTreeMap<String, VecDeque<GoldenUpdate>>,
    pub golden_feed: Vec<GoldenChange>,
    /// Refused input with its reason, as `mdhub.dlq.<system>` would hold it.
    pub dead_letters: Vec<(Rejection, Inbound)>,
}

impl MemoryBus {
    /// Publishes a change event on `mdhub.in.<system>.<entity>`.
    pub fn publish(&mut self, event: &ChangeEvent) {
        self.publish_raw(
            mdhub_schema::in_subject(&event.system, &event.entity),
            serde_json::to_vec(event).expect("events serialize"),
        );
    }

    /// Publishes raw bytes, as any client could.
    pub fn publish_raw(&mut self, subject: String, payload: Vec<u8>) {
        self.inbox
            .push_back(Inbound::new(subject, Bytes::from(payload)));
    }

    /// Ingests everything waiting, in batches of `batch_size`, and routes the
    /// hub's output. Returns the summed outcome.
    pub fn pump(&mut self, hub: &mut Hub, batch_size: usize) -> Result<IngestOutcome, LogError> {
        let mut total = IngestOutcome::default();
        while !self.inbox.is_empty() {
            let n = batch_size.min(self.inbox.len());
            let batch: Vec<Inbound> = self.inbox.drain(..n).collect();
            let mut outcome = hub.ingest(&batch)?;
            if let Some(matched) = hub.settle_matching()? {
                outcome.absorb(matched);
            }
            for (i, rejection) in outcome.rejected.into_iter().chain(outcome.conflicting) {
                self.dead_letters
                    .push((rejection.clone(), batch[i].clone()));
                total.rejected.push((i, rejection));
            }
            for o in &outcome.outbound {
                match o {
                    Outbound::Update(u) => self
                        .outboxes
                        .entry(u.system.clone())
                        .or_default()
                        .push_back(u.clone()),
                    Outbound::Golden(g) => self.golden_feed.push(g.clone()),
                }
            }
            hub.published_marker()
                .mark(outcome.last_seq, outcome.outbound.len())?;
            total.appended += outcome.appended;
            total.duplicates += outcome.duplicates;
            total.conflicts += outcome.conflicts;
            total.outbound.extend(outcome.outbound);
            total.last_seq = outcome.last_seq;
            if outcome.degraded {
                // The hub logs nothing more: what waits stays in the inbox.
                total.degraded = true;
                break;
            }
        }
        Ok(total)
    }

    /// Takes the golden updates waiting for `system`.
    pub fn take_updates(&mut self, system: &str) -> Vec<GoldenUpdate> {
        self.outboxes
            .get_mut(system)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }
}
