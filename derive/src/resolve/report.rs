//! `mdhub match report`: the match model in force and how it decides, as
//! plain text tables or one self-contained HTML page.
//!
//! `build` reads a derived state into a `Report`: every comparison with
//! each level's m, u and weight (the disagreement level too), the prior
//! and the scores the decision probabilities ask for at the current record
//! count, the term frequencies of the `tf` comparisons, and sample
//! decisions: the best-scoring pair of source records of golden records
//! that hold several (rescored now, with the term frequencies of all
//! records held), and open review tasks as they were scored. `text` and
//! `html` only render a `Report`: what a report shows is what `build`
//! computed, and the same log gives the same report.
//!
//! Record values come from users: the text keeps control characters out of
//! the terminal, the HTML escapes every value.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use uuid::Uuid;

use super::profile::Profile;
use super::rules::{bits, probability, MatchRules, PRIOR_MIN_RECORDS};
use super::score::{self, Terms};
use super::{ModelInForce, ReviewTask, TaskStatus};
use crate::golden::{GoldenRecord, SourceKey};
use crate::state::State;
use crate::store::StoreError;

/// Values shown per term-frequency table: the most frequent.
pub const TOP_TERMS: usize = 20;

/// Source records of one golden record paired for its link sample (the
/// first in key order): bounds the pairs scored per golden record.
const LINK_SAMPLE_SOURCES: usize = 8;

/// Everything a report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The last log entry the state was derived from.
    pub log_seq: u64,
    /// Golden records not retired.
    pub golden_records: usize,
    pub model: MatchModel,
    pub terms: Vec<TermTable>,
    pub links: Vec<Sample>,
    /// Golden records holding two or more source records (the link
    /// samples are taken from the first of them, by golden id).
    pub linked_golden_records: usize,
    pub reviews: Vec<Sample>,
    /// Open review tasks (the review samples are the first, by golden id).
    pub open_reviews: usize,
}

/// The match rules in force, as figures.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchModel {
    /// Source records the matcher has numbered: the count the prior is
    /// taken at.
    pub records: u64,
    pub prior: f64,
    /// Where the prior comes from.
    pub prior_rule: String,
    /// Where m and u come from: the config, or a trained model's log entry.
    pub source: String,
    pub link_probability: f64,
    pub review_probability: f64,
    /// Scores (bits, without the prior) at which a pair reaches the link
    /// and the review probability.
    pub link_score: f64,
    pub review_score: f64,
    pub comparisons: Vec<ComparisonRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonRow {
    pub name: String,
    pub fields: Vec<String>,
    pub comparator: String,
    /// tf, swaps, kinds: what changes when the comparison is made.
    pub notes: Vec<String>,
    /// In order, the disagreement level ("else") last.
    pub levels: Vec<LevelRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LevelRow {
    pub label: String,
    pub m: f64,
    pub u: f64,
    /// log2(m/u): what the level adds to a pair's score.
    pub bits: f64,
}

/// The term frequencies of one `tf` comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct TermTable {
    pub comparison: String,
    /// Records held with a value for the comparison.
    pub records: u64,
    /// Distinct values among them.
    pub values: usize,
    /// m and u of the exact level the frequencies adjust.
    pub m: f64,
    pub u: f64,
    /// The most frequent values, most frequent first (ties: by value).
    pub top: Vec<TermRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TermRow {
    pub value: String,
    pub count: u64,
    /// Of the records with a value.
    pub share: f64,
    /// u of an exact agreement on this value, as the matcher takes it.
    pub u: f64,
    /// What an exact agreement on this value adds: log2(m/u).
    pub bits: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Two source records of one golden record, rescored now.
    Link,
    /// An open review task, as it was scored.
    Review,
}

/// One decision, comparison by comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub kind: SampleKind,
    pub entity: String,
    /// The golden record (of a review task: the source record's own).
    pub golden: Uuid,
    /// A review task's candidate golden record.
    pub candidate: Option<Uuid>,
    /// The source record on each side ("system/record_id"); a review
    /// task's other side is the candidate's source record that scores best
    /// now, whose values are shown.
    pub a: String,
    pub b: String,
    pub rows: Vec<Contribution>,
    /// Sum of the contributions, in bits (without the prior).
    pub score: f64,
    /// Match probability of `score` at the report's prior.
    pub probability: f64,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub comparison: String,
    pub level: String,
    /// The values compared, as the comparator prepared them.
    pub a: String,
    pub b: String,
    pub bits: f64,
}

/// log2 of the odds of `p`.
fn log_odds(p: f64) -> f64 {
    (p / (1.0 - p)).log2()
}

impl MatchModel {
    /// The figures of `rules` with `records` source records held, their m
    /// and u from `trained` or else the config.
    pub fn of(rules: &MatchRules, records: u64, trained: Option<&ModelInForce>) -> MatchModel {
        let source = match trained {
            Some(t) => format!(
                "the model trained on {} records, log entry {} (model {})",
                t.records, t.seq, t.model_id
            ),
            None => "the config ([match] and the built-in comparisons)".to_string(),
        };
        let (link_score, review_score) = rules.thresholds(records);
        let prior_rule = match rules.prior {
            Some(_) => "fixed (prior)".to_string(),
            None => format!(
                "matches_per_record {} over {} records (at least {PRIOR_MIN_RECORDS}, at most 0.5)",
                rules.matches_per_record,
                records.max(PRIOR_MIN_RECORDS)
            ),
        };
        let comparisons = rules
            .comparisons
            .iter()
            .map(|c| {
                let mut notes = Vec::new();
                if c.tf {
                    notes.push("tf".to_string());
                }
                if let Some(j) = c.swap_with {
                    notes.push(format!("also crossed with {}", rules.comparisons[j].name));
                }
                if let Some(k) = &c.only_kind {
                    notes.push(format!("only {k}"));
                }
                if let Some(k) = &c.except_kind {
                    notes.push(format!("not {k}"));
                }
                ComparisonRow {
                    name: c.name.clone(),
                    fields: c.fields.clone(),
                    comparator: serde_json::to_value(c.comparator)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    notes,
                    levels: (0..c.level_count())
                        .map(|i| {
                            let (m, u) = c.m_u(i);
                            LevelRow {
                                label: c.level_label(i),
                                m,
                                u,
                                bits: c.weight(i),
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        MatchModel {
            records,
            prior: rules.prior_at(records),
            prior_rule,
            source,
            link_probability: rules.link_probability,
            review_probability: rules.review_probability,
            link_score,
            review_score,
            comparisons,
        }
    }

    /// The prior as log-odds in bits: where every pair's match weight
    /// starts.
    pub fn prior_bits(&self) -> f64 {
        log_odds(self.prior)
    }

    /// What a pair with this match probability is decided.
    fn decision(&self, p: f64) -> &'static str {
        if p >= self.link_probability {
            "link"
        } else if p >= self.review_probability {
            "review"
        } else {
            "no match"
        }
    }
}

/// The term frequencies of the `tf` comparisons among `profiles` (the
/// records the matcher holds, whose values `terms` counts), with the u the
/// matcher takes for each value from `terms`.
pub fn term_tables<'a>(
    rules: &MatchRules,
    profiles: impl Iterator<Item = &'a Profile>,
    terms: &Terms,
) -> Vec<TermTable> {
    let tf: Vec<usize> = (0..rules.comparisons.len())
        .filter(|&i| rules.comparisons[i].tf && !rules.comparisons[i].levels.is_empty())
        .collect();
    let mut counts: Vec<(u64, BTreeMap<&str, u64>)> = vec![(0, BTreeMap::new()); tf.len()];
    for p in profiles {
        for (t, &i) in tf.iter().enumerate() {
            let values = &p.values[i];
            if values.is_empty() {
                continue;
            }
            counts[t].0 += 1;
            for v in values {
                *counts[t].1.entry(v.as_str()).or_default() += 1;
            }
        }
    }
    tf.iter()
        .zip(counts)
        .map(|(&i, (records, values))| {
            let c = &rules.comparisons[i];
            let (m, u) = (c.levels[0].m, c.levels[0].u);
            let mut by_count: Vec<(&str, u64)> = values.iter().map(|(v, n)| (*v, *n)).collect();
            by_count.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
            let top = by_count
                .into_iter()
                .take(TOP_TERMS)
                .map(|(value, count)| {
                    let tu = terms.u(i, value, u);
                    TermRow {
                        value: value.to_string(),
                        count,
                        share: count as f64 / records.max(1) as f64,
                        u: tu,
                        bits: bits(m, tu),
                    }
                })
                .collect();
            TermTable {
                comparison: c.name.clone(),
                records,
                values: values.len(),
                m,
                u,
                top,
            }
        })
        .collect()
}

/// The report of a derived state, with up to `samples` link samples and
/// as many review samples.
pub fn build(state: &State, samples: usize) -> Result<Report, StoreError> {
    let resolver = state.resolver();
    let rules = resolver.rules();
    let model = MatchModel::of(rules, resolver.records_held(), resolver.model());
    // One pass over the golden records; only the samples are kept.
    let mut golden_records = 0;
    let mut linked_golden_records = 0;
    let mut links = Vec::new();
    let mut failed = None;
    state.for_each_record(|r| {
        if r.retired {
            return;
        }
        golden_records += 1;
        if r.links.len() >= 2 {
            linked_golden_records += 1;
            if links.len() < samples && failed.is_none() {
                match link_sample(state, r, &model) {
                    Ok(sample) => links.extend(sample),
                    Err(e) => failed = Some(e),
                }
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let mut open: Vec<&ReviewTask> = state
        .review_tasks()
        .filter(|t| t.status == TaskStatus::Open)
        .collect();
    open.sort_by_key(|t| (t.golden_id, t.task_id));
    let reviews = open
        .iter()
        .take(samples)
        .map(|t| review_sample(state, t, &model))
        .collect::<Result<_, StoreError>>()?;
    Ok(Report {
        log_seq: state.applied_seq(),
        golden_records,
        terms: term_tables(rules, resolver.profiles()?.iter(), resolver.terms()),
        links,
        linked_golden_records,
        reviews,
        open_reviews: open.len(),
        model,
    })
}

fn source_label(k: &SourceKey) -> String {
    format!("{}/{}", k.system, k.record_id)
}

/// The values comparison `c` compares of a record, as prepared.
fn values_of(p: Option<&Profile>, c: usize) -> String {
    p.map(|p| p.values[c].join(" | ")).unwrap_or_default()
}

/// The best-scoring pair of the first source records of `record`, rescored
/// now; `None` when fewer than two have a profile.
fn link_sample(
    state: &State,
    record: &GoldenRecord,
    model: &MatchModel,
) -> Result<Option<Sample>, StoreError> {
    let resolver = state.resolver();
    let rules = resolver.rules();
    let mut members: Vec<(&SourceKey, Arc<Profile>)> = Vec::new();
    for k in &record.links {
        if members.len() == LINK_SAMPLE_SOURCES {
            break;
        }
        if let Some(p) = resolver.profile_of(k)? {
            members.push((k, p));
        }
    }
    let mut best: Option<(f64, usize, usize, Vec<score::Scored>)> = None;
    for i in 0..members.len() {
        for j in i + 1..members.len() {
            let (s, parts) =
                score::score(&members[i].1, &members[j].1, rules, Some(resolver.terms()));
            if best.as_ref().is_none_or(|b| s > b.0) {
                best = Some((s, i, j, parts));
            }
        }
    }
    let Some((score, i, j, parts)) = best else {
        return Ok(None);
    };
    let (ka, pa, kb, pb) = (members[i].0, &*members[i].1, members[j].0, &*members[j].1);
    let rows = parts
        .iter()
        .map(|s| {
            let part = s.part(rules);
            Contribution {
                comparison: part.comparison,
                level: part.level,
                a: values_of(Some(pa), s.comparison),
                b: values_of(Some(pb), s.comparison),
                bits: s.weight,
            }
        })
        .collect();
    let email_key = state
        .rules()
        .models
        .get(&record.entity)
        .is_some_and(|m| m.match_keys().any(|f| f.name == "email"));
    let note = (score < model.link_score).then(|| {
        if email_key && pa.email.is_some() && pa.email == pb.email {
            "linked by the e-mail match key, whatever the score".to_string()
        } else {
            "below the link probability now: linked through another of its records, \
             by a steward, or before a record changed"
                .to_string()
        }
    });
    Ok(Some(Sample {
        kind: SampleKind::Link,
        entity: record.entity.clone(),
        golden: record.id,
        candidate: None,
        a: source_label(ka),
        b: source_label(kb),
        rows,
        score,
        probability: probability(score, model.prior),
        note,
    }))
}

/// An open review task as scored, with the values of its source record
/// and of the candidate's source record that scores best now.
fn review_sample(state: &State, t: &ReviewTask, model: &MatchModel) -> Result<Sample, StoreError> {
    let resolver = state.resolver();
    let rules = resolver.rules();
    let mine = resolver.profile_of(&t.source)?;
    let candidate = state.survivor(t.candidate);
    let mut theirs: Option<(f64, &SourceKey, Arc<Profile>)> = None;
    let candidate_links = state
        .record(candidate)?
        .map(|r| r.links.clone())
        .unwrap_or_default();
    for k in &candidate_links {
        let Some(p) = resolver.profile_of(k)? else {
            continue;
        };
        let s = mine.as_ref().map_or(0.0, |m| {
            score::score(m, &p, rules, Some(resolver.terms())).0
        });
        if theirs.as_ref().is_none_or(|b| s > b.0) {
            theirs = Some((s, k, p));
        }
    }
    let rows: Vec<Contribution> = t
        .parts
        .iter()
        .map(|part| {
            let c = rules
                .comparisons
                .iter()
                .position(|c| c.name == part.comparison);
            let value = |p: Option<&Profile>| c.map(|c| values_of(p, c)).unwrap_or_default();
            Contribution {
                comparison: part.comparison.clone(),
                level: part.level.clone(),
                a: value(mine.as_deref()),
                b: value(theirs.as_ref().map(|(_, _, p)| &**p)),
                bits: part.weight,
            }
        })
        .collect();
    let score: f64 = rows.iter().map(|r| r.bits).sum();
    let note = ((t.score - score).abs() > 1e-9).then(|| {
        format!(
            "the task's score is {:+.2} bits: raised by the e-mail match key",
            t.score
        )
    });
    Ok(Sample {
        kind: SampleKind::Review,
        entity: state
            .record(t.golden_id)?
            .map(|r| r.entity.clone())
            .unwrap_or_default(),
        golden: t.golden_id,
        candidate: Some(candidate),
        a: source_label(&t.source),
        b: theirs.map(|(_, k, _)| source_label(k)).unwrap_or_default(),
        rows,
        score,
        probability: probability(score, model.prior),
        note,
    })
}

// ---- figures ----

/// `x` with 4 significant digits (near 1, of its distance to 1: u of a
/// disagreement is often 0.99999), without trailing zeros or exponent.
fn num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = |y: f64| 3 - y.abs().log10().floor() as i32;
    let mut decimals = digits(x);
    if x > 0.99 && x < 1.0 {
        decimals = decimals.max(digits(1.0 - x));
    }
    let decimals = decimals.clamp(0, 15) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn signed_bits(x: f64) -> String {
    format!("{x:+.2}")
}

/// A probability readable at both ends.
fn prob(p: f64) -> String {
    if 1.0 - p < 5e-7 {
        ">0.999999".to_string()
    } else if p < 1e-3 {
        format!("{p:.2e}")
    } else {
        let s = format!("{p:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn percent(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

// ---- tables, shared by text and HTML ----

/// A table as rendered: a header, rows of cells, and which rows start a
/// group (a comparison's first level).
struct Table {
    head: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
    group_starts: Vec<bool>,
}

#[derive(Clone, Copy, PartialEq)]
enum Align {
    Left,
    Right,
}

use Align::{Left as L, Right as R};

impl Table {
    fn new(head: &[(&'static str, Align)], rows: Vec<Vec<String>>) -> Table {
        Table {
            head: head.to_vec(),
            group_starts: vec![false; rows.len()],
            rows,
        }
    }
}

fn decision_table(m: &MatchModel) -> Table {
    let row = |what: &str, p: String, odds: f64, needed: Option<f64>, rule: &str| {
        vec![
            what.to_string(),
            p,
            signed_bits(odds),
            needed.map(signed_bits).unwrap_or_default(),
            rule.to_string(),
        ]
    };
    Table::new(
        &[
            ("", L),
            ("probability", R),
            ("log-odds bits", R),
            ("score needed", R),
            ("", L),
        ],
        vec![
            row(
                "prior",
                format!("{:.4e}", m.prior),
                m.prior_bits(),
                None,
                &m.prior_rule,
            ),
            row(
                "link",
                num(m.link_probability),
                log_odds(m.link_probability),
                Some(m.link_score),
                "",
            ),
            row(
                "review",
                num(m.review_probability),
                log_odds(m.review_probability),
                Some(m.review_score),
                "",
            ),
        ],
    )
}

fn comparisons_table(m: &MatchModel) -> Table {
    Table::new(
        &[
            ("comparison", L),
            ("fields", L),
            ("comparator", L),
            ("notes", L),
        ],
        m.comparisons
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.fields.join(", "),
                    c.comparator.clone(),
                    c.notes.join("; "),
                ]
            })
            .collect(),
    )
}

fn levels_table(m: &MatchModel) -> Table {
    let mut rows = Vec::new();
    let mut group_starts = Vec::new();
    for c in &m.comparisons {
        for (i, l) in c.levels.iter().enumerate() {
            let name = if i == 0 {
                c.name.clone()
            } else {
                String::new()
            };
            rows.push(vec![
                name,
                l.label.clone(),
                num(l.m),
                num(l.u),
                signed_bits(l.bits),
            ]);
            group_starts.push(i == 0);
        }
    }
    Table {
        head: vec![
            ("comparison", L),
            ("level", L),
            ("m", R),
            ("u", R),
            ("bits", R),
        ],
        rows,
        group_starts,
    }
}

fn terms_heading(t: &TermTable) -> String {
    format!(
        "Term frequencies of {}: {} records with a value, {} values; exact level m {}, u {}",
        t.comparison,
        t.records,
        t.values,
        num(t.m),
        num(t.u)
    )
}

fn terms_table(t: &TermTable) -> Table {
    Table::new(
        &[
            ("value", L),
            ("records", R),
            ("share", R),
            ("u", R),
            ("bits if exact", R),
        ],
        t.top
            .iter()
            .map(|v| {
                vec![
                    v.value.clone(),
                    v.count.to_string(),
                    percent(v.share),
                    num(v.u),
                    signed_bits(v.bits),
                ]
            })
            .collect(),
    )
}

fn links_heading(r: &Report) -> String {
    format!(
        "Sample links: {} of {} golden records with two or more source records \
         (the best-scoring pair of each, rescored now)",
        r.links.len(),
        r.linked_golden_records
    )
}

fn reviews_heading(r: &Report) -> String {
    format!(
        "Open review tasks: {} of {} (as scored when opened; probability at the current prior)",
        r.reviews.len(),
        r.open_reviews
    )
}

fn sample_title(s: &Sample) -> String {
    match s.kind {
        SampleKind::Link => format!(
            "{}, golden record {}: {} ~ {}",
            s.entity, s.golden, s.a, s.b
        ),
        SampleKind::Review => format!(
            "{}, {} (golden record {}) ~ candidate golden record {}{}",
            s.entity,
            s.a,
            s.golden,
            s.candidate.map(|c| c.to_string()).unwrap_or_default(),
            if s.b.is_empty() {
                String::new()
            } else {
                format!(" (values of {})", s.b)
            }
        ),
    }
}

fn contributions_table(s: &Sample) -> Table {
    Table::new(
        &[
            ("comparison", L),
            ("level", L),
            ("a", L),
            ("b", L),
            ("bits", R),
        ],
        s.rows
            .iter()
            .map(|c| {
                vec![
                    c.comparison.clone(),
                    c.level.clone(),
                    c.a.clone(),
                    c.b.clone(),
                    signed_bits(c.bits),
                ]
            })
            .collect(),
    )
}

/// The sample's sum, match weight, probability and decision.
fn sample_summary(s: &Sample, m: &MatchModel) -> String {
    format!(
        "score {} bits, prior {} bits: match weight {} bits, probability {}: {}",
        signed_bits(s.score),
        signed_bits(m.prior_bits()),
        signed_bits(s.score + m.prior_bits()),
        prob(s.probability),
        m.decision(s.probability)
    )
}

// ---- text ----

/// Cells of other than the last column are cut to this many characters.
const TEXT_CELL: usize = 40;

/// A value for a terminal: control characters (escape sequences, line
/// breaks) written out, cut to `max` characters.
fn plain(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if out.chars().count() > max {
        out = out.chars().take(max.saturating_sub(1)).collect::<String>() + "…";
    }
    out
}

impl Table {
    /// Each column as wide as its widest cell, indented by two.
    fn text(&self, out: &mut String) {
        let last = self.head.len().saturating_sub(1);
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(i, c)| plain(c, if i == last { usize::MAX } else { TEXT_CELL }))
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = self.head.iter().map(|(h, _)| h.chars().count()).collect();
        for r in &cells {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let head: Vec<String> = self.head.iter().map(|(h, _)| h.to_string()).collect();
        for r in std::iter::once(&head).chain(&cells) {
            let mut line = String::from("  ");
            for ((cell, w), (_, align)) in r.iter().zip(&widths).zip(&self.head) {
                let pad = " ".repeat(w - cell.chars().count());
                match align {
                    Align::Right => line.push_str(&(pad + cell)),
                    Align::Left => line.push_str(&(cell.clone() + &pad)),
                }
                line.push_str("  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

/// The report as plain text tables.
pub fn text(r: &Report) -> String {
    let m = &r.model;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mdhub match report: log entry {}, {} source records, {} golden records\n\
         m and u from {}.\n\
         Values are shown as compared (prepared by each comparator); they are personal data.\n\n\
         Decision (match weight = score + prior, in bits)",
        r.log_seq, m.records, r.golden_records, m.source
    );
    decision_table(m).text(&mut out);
    out.push_str("\nComparisons\n");
    comparisons_table(m).text(&mut out);
    out.push_str("\nLevels (bits = log2(m/u), added when the level is the first that holds)\n");
    levels_table(m).text(&mut out);
    for t in &r.terms {
        let _ = writeln!(out, "\n{}", terms_heading(t));
        terms_table(t).text(&mut out);
    }
    for (heading, samples) in [
        (links_heading(r), &r.links),
        (reviews_heading(r), &r.reviews),
    ] {
        let _ = writeln!(out, "\n{heading}");
        for (n, s) in samples.iter().enumerate() {
            let _ = writeln!(out, "\n[{}] {}", n + 1, plain(&sample_title(s), usize::MAX));
            contributions_table(s).text(&mut out);
            let _ = writeln!(out, "  {}", sample_summary(s, m));
            if let Some(note) = &s.note {
                let _ = writeln!(out, "  note: {note}");
            }
        }
    }
    out
}

// ---- HTML ----

/// Text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222;padding:0 1em}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}h3{font-size:1em}\
table{border-collapse:collapse;margin:.5em 0}\
th,td{padding:2px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}tr.first td{border-top:1px solid #bbb}\
td.v{word-break:break-all}.note{color:#555;font-style:italic}\
.pos{fill:#3b76c4}.neg{fill:#d0533f}.link{fill:#2e8b57}.review{fill:#e0a030}.none{fill:#999}\
.grid{stroke:#e4e4e4}.zero{stroke:#444}.sep{stroke:#ccc}.thr{stroke:#333;stroke-dasharray:4 3}\
svg text{font:12px system-ui,sans-serif}";

impl Table {
    fn html(&self, out: &mut String) {
        let class = |a: &Align| match a {
            Align::Right => " class=\"n\"",
            Align::Left => " class=\"v\"",
        };
        out.push_str("<table><tr>");
        for (h, a) in &self.head {
            let _ = write!(out, "<th{}>{}</th>", class(a), esc(h));
        }
        out.push_str("</tr>\n");
        for (r, first) in self.rows.iter().zip(&self.group_starts) {
            out.push_str(if *first {
                "<tr class=\"first\">"
            } else {
                "<tr>"
            });
            for (cell, (_, a)) in r.iter().zip(&self.head) {
                let _ = write!(out, "<td{}>{}</td>", class(a), esc(cell));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
}

/// A step of 1, 2 or 5 times a power of ten giving about four ticks.
fn tick_step(extent: f64) -> f64 {
    let raw = (extent / 4.0).max(1e-9);
    let base = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|k| k * base)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * base)
}

const CHART_W: f64 = 900.0;
/// Row labels end here (right-aligned); the plot starts after a gap and
/// leaves room for the value column on the right.
const LABEL_W: f64 = 300.0;
const PLOT_X: f64 = 310.0;
const PLOT_W: f64 = 500.0;
const ROW_H: f64 = 18.0;
const TOP: f64 = 26.0;

/// An x axis over [lo, hi] (multiples of `step`, zero within) in the plot
/// area.
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>) -> Axis {
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for v in values {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let step = tick_step((hi - lo).max(1.0));
        let lo = (lo / step).floor() * step;
        Axis {
            lo,
            hi: ((hi / step).ceil() * step).max(lo + step),
            step,
        }
    }

    fn x(&self, v: f64) -> f64 {
        PLOT_X + (v - self.lo) / (self.hi - self.lo) * PLOT_W
    }

    /// Grid lines with labels, the zero line darker.
    fn draw(&self, out: &mut String, height: f64) {
        let ticks = ((self.hi - self.lo) / self.step).round() as i64;
        for k in 0..=ticks {
            let t = self.lo + k as f64 * self.step;
            let x = self.x(t);
            let _ = write!(
                out,
                "<line class=\"{}\" x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{height:.1}\"/>\
                 <text x=\"{x:.1}\" y=\"14\" text-anchor=\"middle\">{}</text>",
                if t.abs() < self.step / 2.0 {
                    "zero"
                } else {
                    "grid"
                },
                TOP - 6.0,
                num(t)
            );
        }
    }
}

fn svg_open(out: &mut String, height: f64, label: &str) {
    let _ = write!(
        out,
        "<svg width=\"{CHART_W}\" height=\"{height:.0}\" viewBox=\"0 0 {CHART_W} {height:.0}\" \
         role=\"img\" aria-label=\"{}\">",
        esc(label)
    );
}

/// Row `row` of a chart: its label, a bar from `from` to `to` with a
/// tooltip, and `value` on the right.
#[allow(clippy::too_many_arguments)]
fn chart_row(
    out: &mut String,
    axis: &Axis,
    row: usize,
    label: &str,
    bold: bool,
    (from, to): (f64, f64),
    class: &str,
    value: f64,
) {
    let y = TOP + row as f64 * ROW_H;
    let (x1, x2) = (axis.x(from.min(to)), axis.x(from.max(to)));
    let _ = write!(
        out,
        "<text x=\"{LABEL_W}\" y=\"{:.1}\" text-anchor=\"end\"{}>{}</text>\
         <rect class=\"bar {class}\" x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\">\
         <title>{}: {} bits</title></rect>\
         <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        y + 13.0,
        if bold { " font-weight=\"bold\"" } else { "" },
        esc(label),
        y + 3.0,
        (x2 - x1).max(0.5),
        ROW_H - 6.0,
        esc(label),
        signed_bits(value),
        PLOT_X + PLOT_W + 8.0,
        y + 13.0,
        signed_bits(value)
    );
}

fn sign_class(w: f64) -> &'static str {
    if w >= 0.0 {
        "pos"
    } else {
        "neg"
    }
}

/// The match weights chart: the prior and every level of every
/// comparison as a bar of its weight in bits, right for evidence of a
/// match, left against.
pub fn weights_chart(m: &MatchModel) -> String {
    let mut rows: Vec<(String, f64, bool)> = vec![("prior".to_string(), m.prior_bits(), true)];
    for c in &m.comparisons {
        for (i, l) in c.levels.iter().enumerate() {
            rows.push((format!("{}: {}", c.name, l.label), l.bits, i == 0));
        }
    }
    let axis = Axis::new(rows.iter().map(|r| r.1));
    let height = TOP + rows.len() as f64 * ROW_H + 8.0;
    let mut out = String::new();
    svg_open(&mut out, height, "match weights chart");
    axis.draw(&mut out, height - 4.0);
    for (i, (label, w, first)) in rows.iter().enumerate() {
        if *first && i > 0 {
            let y = TOP + i as f64 * ROW_H;
            let _ = write!(
                out,
                "<line class=\"sep\" x1=\"0\" y1=\"{y:.1}\" x2=\"{CHART_W}\" y2=\"{y:.1}\"/>"
            );
        }
        chart_row(
            &mut out,
            &axis,
            i,
            label,
            i == 0,
            (0.0, *w),
            sign_class(*w),
            *w,
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A sample's waterfall: from the prior, each comparison's contribution
/// moves the match weight; the last bar is the match weight, against the
/// link and review weights (dashed).
pub fn waterfall(s: &Sample, m: &MatchModel) -> String {
    let link = log_odds(m.link_probability);
    let review = log_odds(m.review_probability);
    let mut steps: Vec<(String, f64)> = vec![("prior".to_string(), m.prior_bits())];
    steps.extend(
        s.rows
            .iter()
            .map(|c| (format!("{}: {}", c.comparison, c.level), c.bits)),
    );
    let mut cumulative = vec![0.0];
    for (_, w) in &steps {
        cumulative.push(cumulative[cumulative.len() - 1] + w);
    }
    let total = cumulative[steps.len()];
    let axis = Axis::new(cumulative.iter().copied().chain([link, review]));
    let height = TOP + (steps.len() + 1) as f64 * ROW_H + 8.0;
    let mut out = String::new();
    svg_open(&mut out, height, "contributions to the match weight");
    axis.draw(&mut out, height - 4.0);
    for (name, w) in [("link", link), ("review", review)] {
        let x = axis.x(w);
        let _ = write!(
            out,
            "<line class=\"thr\" x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{:.1}\">\
             <title>{name} at {} bits</title></line>",
            TOP - 4.0,
            height - 4.0,
            signed_bits(w)
        );
    }
    for (i, (label, w)) in steps.iter().enumerate() {
        let span = (cumulative[i], cumulative[i + 1]);
        chart_row(&mut out, &axis, i, label, false, span, sign_class(*w), *w);
    }
    let class = match m.decision(s.probability) {
        "link" => "link",
        "review" => "review",
        _ => "none",
    };
    let last = steps.len();
    chart_row(
        &mut out,
        &axis,
        last,
        "match weight",
        true,
        (0.0, total),
        class,
        total,
    );
    out.push_str("</svg>\n");
    out
}

/// The report as one self-contained HTML page: inline CSS and SVG, no
/// script, nothing fetched.
pub fn html(r: &Report) -> String {
    let m = &r.model;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>mdhub match report</title><style>{CSS}</style></head><body>\n\
         <h1>mdhub match report</h1>\n<p>Log entry {}, {} source records, {} golden records; \
         m and u from {}. \
         Values are shown as compared (prepared by each comparator); they are personal data.</p>\n\
         <h2>Decision</h2>\n<p>A pair's match weight is its score plus the prior, in bits; \
         its match probability is 1 / (1 + 2<sup>-weight</sup>).</p>\n",
        r.log_seq,
        m.records,
        r.golden_records,
        esc(&m.source)
    );
    decision_table(m).html(&mut out);
    out.push_str(
        "<h2>Match weights chart</h2>\n<p>Each level's weight log2(m/u) in bits, \
         right for evidence of a match, left against; the prior on top.</p>\n",
    );
    out.push_str(&weights_chart(m));
    out.push_str("<h2>Comparisons</h2>\n");
    comparisons_table(m).html(&mut out);
    out.push_str("<h2>Levels</h2>\n");
    levels_table(m).html(&mut out);
    if !r.terms.is_empty() {
        out.push_str("<h2>Term frequencies</h2>\n");
    }
    for t in &r.terms {
        let _ = writeln!(out, "<h3>{}</h3>", esc(&terms_heading(t)));
        terms_table(t).html(&mut out);
    }
    for (heading, samples) in [
        (links_heading(r), &r.links),
        (reviews_heading(r), &r.reviews),
    ] {
        let _ = writeln!(out, "<h2>{}</h2>", esc(&heading));
        for (n, s) in samples.iter().enumerate() {
            let _ = writeln!(
                out,
                "<section><h3>[{}] {}</h3>",
                n + 1,
                esc(&sample_title(s))
            );
            contributions_table(s).html(&mut out);
            let _ = writeln!(out, "<p>{}</p>", esc(&sample_summary(s, m)));
            if let Some(note) = &s.note {
                let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(note));
            }
            out.push_str(&waterfall(s, m));
            out.push_str("</section>\n");
        }
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mdhub_schema::{ChangeEvent, Op, SCHEMA_VERSION};
    use serde_json::{json, Value};

    use super::*;
    use crate::entry::LogPayload;
    use crate::resolve::rules::MatchConfig;
    use crate::state::{Rules, SystemConfig};

    fn state_of(events: &[(&str, &str, Value)]) -> State {
        let system = SystemConfig {
            region: Some("DE".into()),
            ..Default::default()
        };
        // Links at 0.99, as the samples (one link, one review) were chosen
        // for.
        let matching: MatchConfig = toml::from_str("link_probability = 0.99").unwrap();
        let rules = Rules {
            models: [(
                "customer".to_string(),
                mdhub_schema::Model::default_customer(),
            )]
            .into(),
            systems: [
                ("crm".to_string(), system.clone()),
                ("erp".to_string(), system),
            ]
            .into(),
            source_priority: Vec::new(),
            field_policy: Default::default(),
            matching: MatchRules::from_config(&matching),
        };
        let mut state = State::new(Arc::new(rules));
        for (n, (system, record_id, fields)) in events.iter().enumerate() {
            let seq = n as u64 + 1;
            let e = ChangeEvent {
                schema_version: SCHEMA_VERSION,
                event_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("event/{seq}").as_bytes()),
                system: system.to_string(),
                entity: "customer".into(),
                record_id: record_id.to_string(),
                op: Op::Upsert,
                fields: fields
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                observed_at: time::macros::datetime!(2026-01-01 00:00 UTC)
                    + time::Duration::minutes(seq as i64),
                base: None,
                caused_by: None,
            };
            state.apply(seq, &LogPayload::Change(e)).unwrap();
        }
        state
    }

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

    /// A link (Anna and Ana), a review task (Anne, other street, no birth
    /// date), and a link of two records whose given name is markup.
    fn sample_state() -> State {
        let mut ana = anna();
        ana["given_name"] = json!("Ana");
        ana["phone"] = json!("+49 30 1234567");
        let script = json!({
            "customer_type": "person",
            "given_name": "<script>alert('x')</script>",
            "family_name": "Featherstonehaugh",
            "birth_date": "1970-07-07",
            "email": "x@example.org",
        });
        state_of(&[
            ("crm", "c1", anna()),
            ("erp", "e1", ana),
            (
                "erp",
                "e2",
                json!({"customer_type": "person", "given_name": "Anne", "family_name": "Schmidt",
                       "postal_code": "10115", "city": "Berlin", "street": "Torstraße 90"}),
            ),
            ("crm", "c3", script.clone()),
            ("erp", "e3", script),
        ])
    }

    /// The lines of a text section, from its heading's line to the next
    /// blank line, without the heading and the column header.
    fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
        let at = text
            .find(heading)
            .unwrap_or_else(|| panic!("{heading:?} in\n{text}"));
        text[at..]
            .lines()
            .skip(2)
            .take_while(|l| !l.trim().is_empty())
            .collect()
    }

    fn last_number(line: &str, from_right: usize) -> f64 {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        tokens[tokens.len() - 1 - from_right]
            .parse()
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn every_level_prints_its_weight_as_log2_of_its_printed_m_over_u() {
        let rules = MatchRules::default();
        let model = MatchModel::of(&rules, 20_000, None);
        let report = Report {
            log_seq: 0,
            golden_records: 0,
            model,
            terms: Vec::new(),
            links: Vec::new(),
            linked_golden_records: 0,
            reviews: Vec::new(),
            open_reviews: 0,
        };
        let text = text(&report);
        let levels = section(&text, "Levels (");
        let expected: usize = rules.comparisons.iter().map(|c| c.level_count()).sum();
        assert_eq!(levels.len(), expected, "{text}");
        for line in &levels {
            let (m, u, weight) = (
                last_number(line, 2),
                last_number(line, 1),
                last_number(line, 0),
            );
            assert!(
                (weight - (m / u).log2()).abs() < 0.01,
                "{line}: log2({m}/{u}) = {}",
                (m / u).log2()
            );
        }
        // Every comparison heads its levels and has a row of its own, and
        // is in the HTML; the disagreement level is shown.
        let html = html(&report);
        for c in &rules.comparisons {
            assert!(
                levels
                    .iter()
                    .any(|l| l.split_whitespace().next() == Some(&c.name)),
                "{} in\n{text}",
                c.name
            );
            assert!(
                section(&text, "Comparisons")
                    .iter()
                    .any(|l| l.split_whitespace().next() == Some(&c.name)),
                "{}",
                c.name
            );
            assert!(
                html.contains(&format!("<td class=\"v\">{}</td>", c.name)),
                "{}",
                c.name
            );
        }
        let email = levels
            .iter()
            .position(|l| l.trim_start().starts_with("email"))
            .unwrap();
        assert!(levels[email + 1].contains("else"), "{}", levels[email + 1]);
        assert!((last_number(levels[email], 0) - (0.8f64 / 0.00001).log2()).abs() < 0.005);

        // The scores needed are the probabilities' log-odds less the
        // prior's: 1 in 20,000 records and 0.95 make 4.25 + 14.29 bits.
        let decision = section(&text, "Decision (");
        let prior_bits: f64 = decision[0]
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (prior_bits - (1.0f64 / 19_999.0).log2()).abs() < 0.005,
            "{}",
            decision[0]
        );
        for (line, p) in [(decision[1], 0.95f64), (decision[2], 0.5)] {
            let needed = last_number(line, 0);
            let odds = last_number(line, 1);
            assert!((odds - (p / (1.0 - p)).log2()).abs() < 0.005, "{line}");
            assert!((needed - (odds - prior_bits)).abs() < 0.011, "{line}");
        }
        assert!(decision[1].contains("+18.54"), "{}", decision[1]);
    }

    #[test]
    fn sample_contributions_sum_to_the_printed_score_and_give_the_printed_probability() {
        let state = sample_state();
        let report = build(&state, 10).unwrap();
        let text = text(&report);
        assert_eq!(report.links.len(), 2, "{text}");
        assert_eq!(report.linked_golden_records, 2);
        assert_eq!(
            (report.reviews.len(), report.open_reviews),
            (1, 1),
            "{text}"
        );
        let review = &report.reviews[0];
        assert_eq!(review.a, "erp/e2");
        let c1 = state
            .golden_of(&SourceKey {
                system: "crm".into(),
                record_id: "c1".into(),
            })
            .unwrap()
            .unwrap();
        assert_eq!(review.candidate, Some(c1));
        assert_eq!(
            review.b, "crm/c1",
            "the candidate's record that scores best"
        );
        let task = state.review_tasks().next().unwrap();
        assert!((review.score - task.score).abs() < 1e-9);

        let mut blocks = 0;
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if !l.starts_with('[') {
                continue;
            }
            blocks += 1;
            // [n] title, the column header, the rows, then the score line.
            let rows: Vec<&str> = lines[i + 2..]
                .iter()
                .take_while(|l| !l.trim_start().starts_with("score "))
                .copied()
                .collect();
            let sum: f64 = rows.iter().map(|r| last_number(r, 0)).sum();
            let summary = lines[i + 2 + rows.len()];
            let words: Vec<&str> = summary.split_whitespace().collect();
            let score: f64 = words[1].parse().unwrap();
            let prior: f64 = words[4].parse().unwrap();
            let weight: f64 = words[8].parse().unwrap();
            assert!(
                (sum - score).abs() <= 0.005 * (rows.len() as f64 + 1.0),
                "{rows:?} sum to {sum}, printed {score}"
            );
            assert!((score + prior - weight).abs() <= 0.011, "{summary}");
            let printed: f64 = words[11]
                .trim_start_matches('>')
                .trim_end_matches(':')
                .parse()
                .unwrap();
            assert!(
                (printed - 1.0 / (1.0 + (-weight).exp2())).abs() < 1e-3,
                "{summary}"
            );
            assert!(
                summary.ends_with(report.model.decision(printed)),
                "{summary}"
            );
        }
        assert_eq!(blocks, 3, "{text}");
        // The links are decided links; the task's pair a review.
        for s in &report.links {
            assert!(s.probability >= report.model.link_probability, "{s:?}");
        }
        assert!(text.contains("erp/e2"), "{text}");
        assert!(review.probability >= report.model.review_probability);
        assert!(review.probability < report.model.link_probability);
    }

    #[test]
    fn the_same_log_gives_the_same_report_with_samples_by_golden_id() {
        let state = sample_state();
        let (a, b) = (
            build(&state, 10).unwrap(),
            build(&sample_state(), 10).unwrap(),
        );
        assert_eq!(a, b);
        assert_eq!(text(&a), text(&b));
        assert_eq!(html(&a), html(&b));
        let ids: Vec<Uuid> = a.links.iter().map(|s| s.golden).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        // Fewer samples: the first by golden id.
        let one = build(&state, 1).unwrap();
        assert_eq!(one.links, a.links[..1]);
        assert_eq!(one.linked_golden_records, 2);
    }

    #[test]
    fn term_tables_count_the_records_held_and_take_the_matchers_u() {
        let state = sample_state();
        let report = build(&state, 0).unwrap();
        let rules = state.resolver().rules();
        let tf: Vec<&str> = rules
            .comparisons
            .iter()
            .filter(|c| c.tf)
            .map(|c| c.name.as_str())
            .collect();
        let shown: Vec<&str> = report.terms.iter().map(|t| t.comparison.as_str()).collect();
        assert_eq!(shown, tf);
        let family = report
            .terms
            .iter()
            .find(|t| t.comparison == "family_name")
            .unwrap();
        // Five records, three Schmidt, two Featherstonehaugh.
        assert_eq!((family.records, family.values), (5, 2), "{family:?}");
        assert_eq!(family.top[0].count, 3);
        assert!((family.top[0].share - 0.6).abs() < 1e-12);
        let i = rules
            .comparisons
            .iter()
            .position(|c| c.name == "family_name")
            .unwrap();
        for row in &family.top {
            let u = state.resolver().terms().u(i, &row.value, family.u);
            assert_eq!(row.u, u);
            assert!((row.bits - (family.m / u).log2()).abs() < 1e-12);
        }
        assert!(
            family.top[0].bits < family.top[1].bits,
            "the common name weighs less"
        );
        let text = text(&report);
        assert!(text.contains("Term frequencies of family_name: 5 records with a value, 2 values"));
    }

    #[test]
    fn html_is_one_page_that_shows_record_values_as_text() {
        let report = build(&sample_state(), 10).unwrap();
        let page = html(&report);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(
            page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
            "{page}"
        );
        for absent in [
            "<script", "<link", "<img", "src=", "href=", "http://", "https://",
        ] {
            assert!(!page.contains(absent), "{absent} in the page");
        }
        // The weights chart, and a waterfall per sample.
        assert_eq!(page.matches("<svg").count(), 1 + 3);
        let levels: usize = report
            .model
            .comparisons
            .iter()
            .map(|c| c.levels.len())
            .sum();
        let chart = weights_chart(&report.model);
        assert_eq!(
            chart.matches("class=\"bar ").count(),
            levels + 1,
            "a bar per level and the prior"
        );
        for c in &report.model.comparisons {
            assert!(chart.contains(&format!(
                ">{}<",
                esc(&format!("{}: {}", c.name, c.levels[0].label))
            )));
        }
        // A waterfall: the prior, each contribution, the match weight.
        let s = &report.links[0];
        let w = waterfall(s, &report.model);
        assert_eq!(w.matches("class=\"bar ").count(), s.rows.len() + 2);
        assert!(w.contains("class=\"bar link\""), "{w}");
        let review = waterfall(&report.reviews[0], &report.model);
        assert!(review.contains("class=\"bar review\""), "{review}");
    }

    #[test]
    fn text_writes_control_characters_out() {
        let mut report = build(&sample_state(), 10).unwrap();
        report.links[0].rows[0].a = "\u{1b}[2Jgone\nnext line".into();
        let t = text(&report);
        assert!(!t.contains('\u{1b}'));
        assert!(t.contains("\\u{1b}[2Jgone\\nnext"), "{t}");
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(0.00001), "0.00001");
        assert_eq!(num(0.000001), "0.000001");
        assert_eq!(num(0.19999999999999996), "0.2");
        assert_eq!(num(0.064), "0.064");
        assert_eq!(num(12.5), "12.5");
        assert_eq!(prob(0.99), "0.99");
        assert_eq!(prob(1.0 - 1e-9), ">0.999999");
        assert_eq!(num(0.99999), "0.99999");
        assert_eq!(num(0.9977), "0.9977");
        assert_eq!(num(0.999_999), "0.999999");
        assert_eq!(prob(2.5e-5), "2.50e-5");
        assert_eq!(tick_step(20.0), 5.0);
        assert_eq!(tick_step(37.0), 10.0);
    }
}
