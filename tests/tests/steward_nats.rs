//! Steward actions end to end over a real nats-server: golden records made
//! by change events on `mdhub.in.<system>.customer`, then a review decision,
//! a merge, a split and an override published on `mdhub.in.steward.customer`
//! as the API publishes them. Each must change the hub's state and send the
//! affected systems their updates on MDHUB_OUT; malformed actions go to the
//! DLQ with their code and apply nothing.

use std::time::Duration;

use async_nats::jetstream;
use mdhub_hub::golden::SourceKey;
use mdhub_hub::nats_bus::{DLQ_STREAM, ORIGINAL_SUBJECT, OUT_STREAM, REJECT_CODE};
use mdhub_hub::resolve::TaskStatus;
use mdhub_hub::steward::{Command, StewardAction};
use mdhub_schema::{GoldenChange, GoldenUpdate};
use mdhub_tests::fixtures::hub_config_toml;
use mdhub_tests::hub_runner::{config, InProcessHub};
use mdhub_tests::nats::NatsServer;
use mdhub_tests::streams::read_all;
use mdhub_tests::wait::wait_until;
use serde_json::{json, Value};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(120);
const STEWARD_SUBJECT: &str = "mdhub.in.steward.customer";

struct Test {
    js: jetstream::Context,
    hub: InProcessHub,
    n: u64,
    /// Log entries expected so far.
    logged: u64,
}

impl Test {
    async fn publish(&mut self, subject: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        self.js
            .publish(subject.to_string(), payload.into())
            .await?
            .await?;
        Ok(())
    }

    async fn change(&mut self, system: &str, record_id: &str, fields: Value) -> anyhow::Result<()> {
        self.n += 1;
        let e = json!({
            "schema_version": 1,
            "event_id": Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("steward-nats/event/{}", self.n).as_bytes()),
            "system": system,
            "entity": "customer",
            "record_id": record_id,
            "op": "upsert",
            "fields": fields,
            "observed_at": format!("2026-01-01T00:{:02}:00Z", self.n),
        });
        self.logged += 1;
        self.publish(
            &format!("mdhub.in.{system}.customer"),
            serde_json::to_vec(&e)?,
        )
        .await
    }

    /// Publishes a steward action as the API does; returns its id.
    async fn steward(&mut self, command: Command) -> anyhow::Result<Uuid> {
        self.n += 1;
        let action = StewardAction {
            action_id: Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("steward-nats/action/{}", self.n).as_bytes(),
            ),
            entity: "customer".into(),
            actor: "dana".into(),
            reason: "checked with the customer".into(),
            at: time::macros::datetime!(2026-02-01 00:00 UTC)
                + time::Duration::minutes(self.n as i64),
            command,
        };
        self.logged += 1;
        self.publish(STEWARD_SUBJECT, serde_json::to_vec(&action)?)
            .await?;
        Ok(action.action_id)
    }

    async fn caught_up(&mut self) -> anyhow::Result<()> {
        self.hub.wait_caught_up(self.logged, DEADLINE).await
    }

    fn golden(&self, system: &str, record_id: &str) -> Uuid {
        self.hub
            .golden_of(system, record_id)
            .unwrap_or_else(|| panic!("{system}/{record_id} is linked"))
    }
}

/// Anna as crm holds her, without an email: only fuzzy matching can link
/// her.
fn anna() -> Value {
    json!({
        "customer_type": "person",
        "given_name": "Anna",
        "family_name": "Schmidt",
        "birth_date": "1985-03-01",
        "street": "Hauptstraße 5",
        "postal_code": "10115",
        "city": "Berlin",
        "phone": "030 1234567",
    })
}

/// What a steward action caused on MDHUB_OUT.
struct Caused {
    updates: Vec<GoldenUpdate>,
    changes: Vec<GoldenChange>,
}

async fn caused_by(js: &jetstream::Context, action: Uuid) -> anyhow::Result<Caused> {
    let mut caused = Caused {
        updates: Vec::new(),
        changes: Vec::new(),
    };
    for m in read_all(js, OUT_STREAM, "mdhub.out.>").await? {
        let u: GoldenUpdate = serde_json::from_slice(&m.payload)?;
        assert_eq!(
            m.subject.as_str(),
            format!("mdhub.out.{}.customer", u.system)
        );
        if u.caused_by == action {
            caused.updates.push(u);
        }
    }
    for m in read_all(js, OUT_STREAM, "mdhub.golden.>").await? {
        let c: GoldenChange = serde_json::from_slice(&m.payload)?;
        if c.caused_by == action {
            caused.changes.push(c);
        }
    }
    Ok(caused)
}

impl Caused {
    fn to(&self, system: &str, record_id: &str) -> Vec<&GoldenUpdate> {
        self.updates
            .iter()
            .filter(|u| u.system == system && u.record_id.as_deref() == Some(record_id))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steward_actions_over_nats_decide_merge_split_and_override_and_tell_the_affected_systems(
) -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    // Links at 0.99, where Anne (another street) is a review task.
    let toml = hub_config_toml().replace("train_at = 0", "train_at = 0\nlink_probability = 0.99");
    let hub = InProcessHub::start(config(&toml, nats.client_url(), dir.path())?).await?;
    let client = async_nats::connect(nats.client_url()).await?;
    let mut t = Test {
        js: jetstream::new(client),
        hub,
        n: 0,
        logged: 0,
    };

    // Given: Anna at crm, and a doubtful Anne at erp (a review task);
    t.change("crm", "c1", anna()).await?;
    t.change(
        "erp",
        "e1",
        json!({"customer_type": "person", "given_name": "Anne", "family_name": "Schmidt",
               "postal_code": "10115", "city": "Berlin", "street": "Torstraße 90"}),
    )
    .await?;
    // two crm records of one customer the matcher cannot join;
    t.change(
        "crm",
        "c7",
        json!({"email": "x@example.org", "given_name": "Xaver"}),
    )
    .await?;
    t.change(
        "crm",
        "c8",
        json!({"email": "y@example.org", "phone": "+49 30 5550100"}),
    )
    .await?;
    // and one customer held by crm and erp, joined by the email.
    t.change(
        "crm",
        "s1",
        json!({"email": "sam@example.org", "given_name": "Sam"}),
    )
    .await?;
    t.change(
        "erp",
        "s2",
        json!({"email": "sam@example.org", "job_title": "Buyer"}),
    )
    .await?;
    t.caught_up().await?;
    let task = {
        let hub = t.hub.hub.read().unwrap();
        let tasks: Vec<_> = hub.state().review_tasks().collect();
        assert_eq!(tasks.len(), 1, "one review task: {tasks:?}");
        tasks[0].task_id
    };
    let (x, y) = (t.golden("crm", "c7"), t.golden("crm", "c8"));
    assert_ne!(x, y);
    let joined = t.golden("crm", "s1");
    assert_eq!(t.golden("erp", "s2"), joined);

    // When: the steward's actions arrive over NATS.
    let decide = t
        .steward(Command::Decide {
            task_id: task,
            same: true,
        })
        .await?;
    let merge = t.steward(Command::Merge { golden_ids: [y, x] }).await?;
    let split = t
        .steward(Command::Split {
            system: "erp".into(),
            record_id: "s2".into(),
        })
        .await?;
    let anna_id = t.golden("crm", "c1");
    let override_ = t
        .steward(Command::Override {
            golden_id: anna_id,
            field: "city".into(),
            value: json!("Berlin-Mitte"),
        })
        .await?;
    t.caught_up().await?;

    // Then: the state.
    {
        let hub = t.hub.hub.read().unwrap();
        let state = hub.state();
        assert_eq!(
            state.review_task(task).unwrap().status,
            TaskStatus::Same,
            "the decision is recorded"
        );
        let anna = state.record(anna_id).unwrap().unwrap();
        assert!(anna.links.contains(&SourceKey {
            system: "erp".into(),
            record_id: "e1".into(),
        }));
        assert_eq!(anna.links.len(), 2, "{:?}", anna.links);
        assert_eq!(anna.values["city"], "Berlin-Mitte", "the override holds");
        assert_eq!(anna.overrides["city"], "Berlin-Mitte");

        let loser = state.record(y).unwrap().unwrap();
        assert!(loser.retired);
        assert_eq!(loser.merged_into, Some(x), "the first created survives");
        let survivor = state.record(x).unwrap().unwrap();
        assert_eq!(survivor.links.len(), 2, "{:?}", survivor.links);
        assert_eq!(survivor.values["given_name"], "Xaver");
        assert!(survivor.values.contains_key("phone"), "c8's phone is kept");

        let own = state
            .golden_of(&SourceKey {
                system: "erp".into(),
                record_id: "s2".into(),
            })
            .unwrap()
            .unwrap();
        assert_ne!(own, joined, "the split record has its own golden record");
        assert_eq!(
            state.record(own).unwrap().unwrap().values["job_title"],
            "Buyer"
        );
        assert!(!state
            .record(joined)
            .unwrap()
            .unwrap()
            .values
            .contains_key("job_title"));
    }
    assert_eq!(t.golden("erp", "e1"), anna_id);
    assert_eq!(t.golden("crm", "c8"), x);

    // Then: each affected system is told, on MDHUB_OUT.
    let decided = caused_by(&t.js, decide).await?;
    assert!(
        decided
            .to("erp", "e1")
            .iter()
            .any(|u| u.golden_id == anna_id),
        "erp hears of e1's new golden record: {:?}",
        decided.updates
    );
    let merged = caused_by(&t.js, merge).await?;
    assert!(
        merged
            .to("crm", "c8")
            .iter()
            .any(|u| u.golden_id == x && u.fields.get("given_name") == Some(&json!("Xaver"))),
        "c8 hears of its survivor and the name it lacks: {:?}",
        merged.updates
    );
    assert!(
        merged
            .to("crm", "c7")
            .iter()
            .any(|u| u.golden_id == x && u.fields.contains_key("phone")),
        "c7 hears of the phone it lacks: {:?}",
        merged.updates
    );
    assert!(
        merged
            .changes
            .iter()
            .any(|c| c.golden_id == y && c.retired && c.merged_into == Some(x)),
        "the golden feed says where the retired id went: {:?}",
        merged.changes
    );
    let split_out = caused_by(&t.js, split).await?;
    let own = t.golden("erp", "s2");
    assert!(
        split_out.to("erp", "s2").iter().any(|u| u.golden_id == own),
        "erp hears of s2's new golden record: {:?}",
        split_out.updates
    );
    let overridden = caused_by(&t.js, override_).await?;
    for (system, record_id) in [("crm", "c1"), ("erp", "e1")] {
        assert!(
            overridden
                .to(system, record_id)
                .iter()
                .any(|u| u.fields.get("city") == Some(&json!("Berlin-Mitte"))),
            "{system}/{record_id} is sent the override: {:?}",
            overridden.updates
        );
    }
    assert!(
        overridden
            .changes
            .iter()
            .any(|c| c.golden_id == anna_id && c.fields.get("city") == Some(&json!("Berlin-Mitte"))),
        "the golden feed carries the override: {:?}",
        overridden.changes
    );

    // Malformed actions: to the DLQ with their codes, nothing logged, and
    // the stream goes on (a good event after them is applied).
    let logged_before = t.hub.last_seq();
    let malformed = serde_json::to_vec(&json!({
        "action_id": "not-a-uuid",
        "entity": "customer",
        "actor": "dana",
        "reason": "typo",
        "at": "2026-02-02T00:00:00Z",
        "command": {"type": "merge", "golden_ids": [x, y]},
    }))?;
    let unreasoned = serde_json::to_vec(&json!({
        "action_id": Uuid::new_v5(&Uuid::NAMESPACE_OID, b"steward-nats/unreasoned"),
        "entity": "customer",
        "actor": "dana",
        "reason": "   ",
        "at": "2026-02-02T00:00:00Z",
        "command": {"type": "override", "golden_id": x, "field": "city", "value": "Kiel"},
    }))?;
    t.publish(STEWARD_SUBJECT, malformed.clone()).await?;
    t.publish(STEWARD_SUBJECT, unreasoned.clone()).await?;
    t.change("oa", "o1", json!({"email": "after@example.org"}))
        .await?;
    // Input is read in stream order and dead letters are stored before
    // their batch commits: once o1 is applied, both actions were judged.
    wait_until("oa/o1 to be applied", DEADLINE, || async {
        t.hub
            .hub
            .read()
            .unwrap()
            .state()
            .golden_of(&SourceKey {
                system: "oa".into(),
                record_id: "o1".into(),
            })
            .unwrap()
            .is_some()
    })
    .await?;
    t.caught_up().await?;
    assert_eq!(
        t.hub.last_seq(),
        logged_before + 1,
        "only the good event logged"
    );
    let dlq = read_all(&t.js, DLQ_STREAM, "mdhub.dlq.>").await?;
    assert_eq!(dlq.len(), 2, "only the malformed actions are dead-lettered");
    for (code, payload) in [
        ("malformed_action", &malformed),
        ("missing_reason", &unreasoned),
    ] {
        let m = dlq
            .iter()
            .find(|m| {
                m.headers
                    .as_ref()
                    .and_then(|h| h.get(REJECT_CODE))
                    .is_some_and(|v| v.as_str() == code)
            })
            .unwrap_or_else(|| panic!("no DLQ message with code {code}"));
        let headers = m.headers.as_ref().unwrap();
        assert_eq!(
            headers.get(ORIGINAL_SUBJECT).map(|v| v.as_str()),
            Some(STEWARD_SUBJECT)
        );
        assert_eq!(&m.payload.to_vec(), payload, "{code}: the original bytes");
    }
    {
        let hub = t.hub.hub.read().unwrap();
        assert!(!hub
            .state()
            .record(x)
            .unwrap()
            .unwrap()
            .values
            .contains_key("city"));
    }
    t.hub.stop().await?;
    Ok(())
}
