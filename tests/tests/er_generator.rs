//! The entity-resolution generator: deterministic, the stated mix, each
//! corruption present at about its rate, every event accepted by the hub's
//! validation; and pairwise F1 on hand-made clusterings. No NATS needed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use mdhub_schema::model::Model;
use mdhub_schema::{validate_event, Catalog, ChangeEvent, Limits};
use mdhub_tests::er_generator::{
    generate, generate_iter, pairwise_f1, ErDataset, Profile, SYSTEM_REGIONS,
};
use uuid::Uuid;

const ENTITIES: usize = 20_000;

/// The default profile's dataset, shared by the tests of this file.
fn dataset() -> &'static ErDataset {
    static DATA: OnceLock<ErDataset> = OnceLock::new();
    DATA.get_or_init(|| generate(&Profile::default_profile(ENTITIES)))
}

fn text<'a>(e: &'a ChangeEvent, field: &str) -> Option<&'a str> {
    e.fields.get(field).and_then(|v| v.as_str())
}

fn entity_of(d: &ErDataset, e: &ChangeEvent) -> u64 {
    d.truth[&(e.system.clone(), e.record_id.clone())]
}

fn is_person(e: &ChangeEvent) -> bool {
    text(e, "customer_type") == Some("person")
}

fn has_han(s: &str) -> bool {
    s.chars().any(|c| c as u32 >= 0x2E80)
}

/// Events grouped by entity.
fn by_entity(d: &ErDataset) -> BTreeMap<u64, Vec<&ChangeEvent>> {
    let mut out: BTreeMap<u64, Vec<&ChangeEvent>> = BTreeMap::new();
    for e in &d.events {
        out.entry(entity_of(d, e)).or_default().push(e);
    }
    out
}

/// Fraction, and a readable assertion that it lies in `lo..=hi`.
fn assert_share(what: &str, count: usize, of: usize, lo: f64, hi: f64) {
    let share = count as f64 / of.max(1) as f64;
    assert!(
        (lo..=hi).contains(&share),
        "{what}: {count}/{of} = {share:.4}, expected {lo}..={hi}"
    );
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j]))
                .min(row[j] + 1)
                .min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn is_adjacent_swap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() != b.len() {
        return false;
    }
    let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    diff.len() == 2
        && diff[1] == diff[0] + 1
        && a[diff[0]] == b[diff[1]]
        && a[diff[1]] == b[diff[0]]
}

fn spelled_out(s: &str) -> String {
    s.replace('ä', "ae")
        .replace('ö', "oe")
        .replace('ü', "ue")
        .replace('Ä', "Ae")
        .replace('Ö', "Oe")
        .replace('Ü', "Ue")
        .replace('ß', "ss")
}

#[test]
fn the_same_seed_gives_the_same_data_and_another_seed_other_data() {
    let p = Profile::default_profile(1500);
    let (a, b) = (generate(&p), generate(&p));
    assert_eq!(a.events, b.events);
    assert_eq!(a.truth, b.truth);
    let other = generate(&Profile {
        seed: 99,
        ..p.clone()
    });
    assert_ne!(a.events, other.events);
    // The stream is the same data without holding it.
    let streamed: Vec<(ChangeEvent, u64)> = generate_iter(&p).collect();
    assert_eq!(streamed.len(), a.events.len());
    for ((event, entity), expected) in streamed.iter().zip(&a.events) {
        assert_eq!(event, expected);
        assert_eq!(*entity, entity_of(&a, expected));
    }
}

#[test]
fn every_event_passes_the_hubs_validation() {
    let d = dataset();
    let models = BTreeMap::from([("customer".to_string(), Model::default_customer())]);
    let known = |s: &str| SYSTEM_REGIONS.iter().any(|(name, _)| *name == s);
    let catalog = Catalog {
        models: &models,
        known_system: &known,
    };
    for e in &d.events {
        let bytes = serde_json::to_vec(e).unwrap();
        let subject = format!("mdhub.in.{}.customer", e.system);
        if let Err(r) = validate_event(&bytes, &subject, &catalog, Limits::default()) {
            panic!("{r}: {e:?}");
        }
    }
}

#[test]
fn ids_are_unique_well_formed_and_arrive_mixed() {
    let d = dataset();
    assert_eq!(d.truth.len(), d.events.len(), "record ids are unique");
    let ids: BTreeSet<Uuid> = d.events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), d.events.len(), "event ids are unique");
    for e in &d.events {
        assert_eq!(e.event_id.get_version_num(), 7);
        let (system, number) = e.record_id.split_once('-').unwrap();
        assert_eq!(system, e.system);
        assert!(number.len() >= 6 && number.bytes().all(|b| b.is_ascii_digit()));
    }
    assert!(d
        .events
        .windows(2)
        .all(|w| w[0].observed_at < w[1].observed_at));
    let first: BTreeSet<&str> = d.events[..30].iter().map(|e| e.system.as_str()).collect();
    assert_eq!(first.len(), 3, "systems interleave");
    // An entity's records do not arrive together.
    let position: HashMap<&str, usize> = d
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.record_id.as_str(), i))
        .collect();
    let apart = by_entity(d)
        .values()
        .filter(|rs| rs.len() == 2)
        .filter(|rs| {
            position[rs[0].record_id.as_str()].abs_diff(position[rs[1].record_id.as_str()]) > 1000
        })
        .count();
    assert!(apart > 1000, "{apart}");
    assert_eq!(d.system_regions["oa"], "CN");
    assert_eq!(d.system_regions["crm"], "DE");
}

#[test]
fn the_default_profile_has_the_stated_mix() {
    let d = dataset();
    let entities = by_entity(d);
    assert_eq!(entities.len(), ENTITIES);
    let companies = entities
        .values()
        .filter(|rs| text(rs[0], "customer_type") == Some("company"))
        .count();
    assert_share("companies", companies, ENTITIES, 0.28, 0.32);
    for (k, share) in [(1, 0.3), (2, 0.45), (3, 0.25)] {
        let n = entities.values().filter(|rs| rs.len() == k).count();
        assert_share(
            &format!("held by {k}"),
            n,
            ENTITIES,
            share - 0.02,
            share + 0.02,
        );
    }

    // Chinese people: pinyin surnames are learnt from people written in Han
    // in one system and in pinyin in another.
    let mut pinyin_surnames = BTreeSet::new();
    for rs in entities.values() {
        if rs
            .iter()
            .any(|r| text(r, "family_name").is_some_and(has_han))
        {
            for r in rs {
                if let Some(f) = text(r, "family_name").filter(|f| !has_han(f)) {
                    pinyin_surnames.insert(f.to_string());
                }
            }
        }
    }
    assert!(pinyin_surnames.len() > 60, "{}", pinyin_surnames.len());
    let names = |r: &ChangeEvent| -> Vec<String> {
        ["given_name", "family_name", "full_name"]
            .iter()
            .filter_map(|f| text(r, f))
            .flat_map(|v| v.split([' ', ',']).map(str::to_string).collect::<Vec<_>>())
            .collect()
    };
    let people: Vec<&Vec<&ChangeEvent>> = entities.values().filter(|rs| is_person(rs[0])).collect();
    let chinese: Vec<&&Vec<&ChangeEvent>> = people
        .iter()
        .filter(|rs| {
            rs.iter()
                .flat_map(|r| names(r))
                .any(|n| has_han(&n) || pinyin_surnames.contains(&n))
        })
        .collect();
    assert_share("Chinese people", chinese.len(), people.len(), 0.105, 0.14);
    let held_by_oa = chinese
        .iter()
        .filter(|rs| rs.iter().any(|r| r.system == "oa"))
        .count();
    assert_share("Chinese people in oa", held_by_oa, chinese.len(), 0.6, 0.9);
    let oa_records: Vec<&ChangeEvent> = chinese
        .iter()
        .flat_map(|rs| rs.iter().copied())
        .filter(|r| r.system == "oa")
        .collect();
    let han = oa_records
        .iter()
        .filter(|r| text(r, "given_name").is_some_and(has_han))
        .count();
    assert_share("Han in oa", han, oa_records.len(), 0.72, 0.88);
    assert!(d
        .events
        .iter()
        .all(|r| r.system == "oa" || !text(r, "given_name").is_some_and(has_han)));
}

#[test]
fn common_names_households_and_similar_companies_make_hard_negatives() {
    let d = dataset();
    let entities_named = |given: &str, family: &str| {
        d.events
            .iter()
            .filter(|e| {
                text(e, "given_name") == Some(given) && text(e, "family_name") == Some(family)
            })
            .map(|e| entity_of(d, e))
            .collect::<BTreeSet<_>>()
            .len()
    };
    assert!(entities_named("Thomas", "Müller") >= 5);
    assert!(entities_named("伟", "王") >= 3);
    // Households: different people at one street with one landline.
    let mut at: HashMap<(&str, &str), BTreeSet<u64>> = HashMap::new();
    for e in d.events.iter().filter(|e| is_person(e)) {
        if let (Some(street), Some(phone)) = (text(e, "street"), text(e, "phone")) {
            let region = SYSTEM_REGIONS
                .iter()
                .find(|(s, _)| *s == e.system)
                .map(|(_, r)| *r);
            let model = mdhub_schema::Model::default_customer();
            let Ok(phone) = mdhub_schema::cleanse_value(
                model.field("phone").unwrap(),
                &serde_json::Value::String(phone.to_string()),
                &mdhub_schema::CleanseContext {
                    default_region: region,
                },
                None,
            ) else {
                continue;
            };
            let key = phone.as_str().unwrap().to_string().leak();
            at.entry((street, key)).or_default().insert(entity_of(d, e));
        }
    }
    let shared = at.values().filter(|s| s.len() > 1).count();
    assert!(shared > 100, "{shared}");
    // One company name, several companies in different cities.
    let mut cities: HashMap<&str, BTreeSet<(u64, &str)>> = HashMap::new();
    for e in d.events.iter().filter(|e| !is_person(e)) {
        cities
            .entry(text(e, "company").unwrap())
            .or_default()
            .insert((entity_of(d, e), text(e, "city").unwrap()));
    }
    assert!(cities.values().any(|s| {
        s.iter().map(|(e, _)| e).collect::<BTreeSet<_>>().len() > 3
            && s.iter().map(|(_, c)| c).collect::<BTreeSet<_>>().len() > 3
    }));
}

#[test]
fn text_damage_appears_at_about_its_rate() {
    let d = dataset();
    let (mut pairs, mut typos, mut swaps, mut transliterated) = (0, 0, 0, 0);
    for rs in by_entity(d).values() {
        for (i, a) in rs.iter().enumerate() {
            for b in &rs[i + 1..] {
                let (Some(x), Some(y)) = (text(a, "city"), text(b, "city")) else {
                    continue;
                };
                if has_han(x) || has_han(y) {
                    continue;
                }
                pairs += 1;
                if x == y {
                    continue;
                }
                if spelled_out(x) == spelled_out(y) || x.contains('ü') || y.contains('ü') {
                    transliterated += 1;
                } else if is_adjacent_swap(x, y) {
                    swaps += 1;
                } else if levenshtein(x, y) == 1 {
                    typos += 1;
                }
            }
        }
    }
    // Either record of a pair may be damaged.
    assert_share("city typos", typos, pairs, 0.06, 0.12);
    assert_share("city transpositions", swaps, pairs, 0.015, 0.06);
    assert!(transliterated > 50, "{transliterated}");
}

#[test]
fn names_vary_by_nickname_order_and_script() {
    let d = dataset();
    let given = |g: &str| {
        d.events
            .iter()
            .filter(|e| text(e, "given_name") == Some(g))
            .count()
    };
    let (thomas, tom) = (given("Thomas"), given("Tom") + given("Tommy"));
    assert_share("Tom for Thomas", tom, thomas + tom, 0.18, 0.3);
    for nickname in ["Bill", "Bob", "Liz", "Hans", "Sepp"] {
        assert!(given(nickname) > 0, "{nickname}");
    }
    // Given and family name swapped between crm and oa.
    let (mut pairs, mut swapped) = (0, 0);
    for rs in by_entity(d).values() {
        let crm = rs.iter().find(|r| r.system == "crm");
        let oa = rs.iter().find(|r| r.system == "oa");
        if let (Some(a), Some(b)) = (crm, oa) {
            if is_person(a) && !text(b, "given_name").is_some_and(has_han) {
                pairs += 1;
                swapped += usize::from(
                    text(a, "given_name") == text(b, "family_name")
                        && text(a, "family_name") == text(b, "given_name"),
                );
            }
        }
    }
    assert_share("swapped names", swapped, pairs, 0.02, 0.06);
    let full: BTreeSet<&str> = d
        .events
        .iter()
        .filter_map(|e| text(e, "full_name"))
        .collect();
    assert!(full.contains("王伟") && full.contains("Wang Wei") && full.contains("Wei Wang"));
    assert!(
        full.iter().any(|f| f.contains(", ")),
        "erp's family-first form"
    );
}

#[test]
fn contact_details_vary_in_format_and_go_missing() {
    let d = dataset();
    let people: Vec<&ChangeEvent> = d.events.iter().filter(|e| is_person(e)).collect();
    let null_email = people
        .iter()
        .filter(|e| e.fields["email"].is_null())
        .count();
    assert_share("missing e-mail", null_email, people.len(), 0.06, 0.1);
    let emails: Vec<&str> = d.events.iter().filter_map(|e| text(e, "email")).collect();
    let cased = emails.iter().filter(|m| m.to_lowercase() != **m).count();
    assert_share("e-mail case", cased, emails.len(), 0.14, 0.22);
    let (mut pairs, mut other) = (0, 0);
    for rs in by_entity(d).values() {
        let lowered: Vec<String> = rs
            .iter()
            .filter_map(|r| text(r, "email"))
            .map(str::to_lowercase)
            .collect();
        if lowered.len() == 2 {
            pairs += 1;
            other += usize::from(lowered[0] != lowered[1]);
        }
    }
    assert_share("another e-mail", other, pairs, 0.1, 0.2);

    let phones: Vec<&str> = d.events.iter().filter_map(|e| text(e, "phone")).collect();
    for shape in [
        "+49 ", "0049", "+49 (0)", "+49-", "+86 ", "0086", "+44", "+41", "+43",
    ] {
        assert!(phones.iter().any(|p| p.starts_with(shape)), "{shape}");
    }
    assert!(phones
        .iter()
        .any(|p| p.starts_with("(0") && p.contains('-')));
    assert!(phones.iter().any(|p| p.starts_with('0') && p.contains('/')));
    let oa_mobiles = d
        .events
        .iter()
        .filter(|e| e.system == "oa")
        .filter_map(|e| text(e, "mobile"))
        .filter(|m| m.starts_with('1') && m.replace([' ', '-'], "").len() == 11)
        .count();
    assert!(
        oa_mobiles > 50,
        "Chinese mobiles written nationally in oa: {oa_mobiles}"
    );
    // Nowhere a national number of another region.
    for e in &d.events {
        let region = &d.system_regions[&e.system];
        for f in ["phone", "mobile"] {
            // National numbers only (not `n/a` and the like, the invalid-value corruption).
            let national = |p: &&str| {
                !p.starts_with('+')
                    && !p.starts_with("00")
                    && p.starts_with(|c: char| c.is_ascii_digit() || c == '(')
            };
            if let Some(p) = text(e, f).filter(national) {
                let country = country_code(e);
                assert_eq!(&country, region, "{p} in {}", e.system);
            }
        }
    }
}

/// The event's country as ISO alpha-2, however it is written (`Deutschland`,
/// `中国`, `DE`), the way the hub cleanses it.
fn country_code(e: &ChangeEvent) -> String {
    let model = Model::default_customer();
    let raw = text(e, "country").expect("every record has a country");
    mdhub_schema::cleanse_value(
        model.field("country").unwrap(),
        &serde_json::Value::String(raw.to_string()),
        &Default::default(),
        None,
    )
    .unwrap_or_else(|e| panic!("country {raw}: {e}"))
    .as_str()
    .unwrap()
    .to_string()
}

#[test]
fn addresses_fit_their_country() {
    let d = dataset();
    for e in &d.events {
        let Some(code) = text(e, "postal_code") else {
            continue;
        };
        let digits = |n: usize| code.len() == n && code.bytes().all(|b| b.is_ascii_digit());
        let ok = match country_code(e).as_str() {
            "DE" => digits(5),
            "AT" | "CH" => digits(4),
            "CN" => digits(6),
            "GB" => code.contains(' ') && code.len() <= 8,
            other => panic!("country {other}"),
        };
        assert!(ok, "{code} in {:?}", text(e, "country"));
    }
    let streets: Vec<&str> = d.events.iter().filter_map(|e| text(e, "street")).collect();
    assert!(streets.iter().any(|s| s.contains("str. ")));
    assert!(streets.iter().any(|s| s.ends_with('号')));
}

#[test]
fn companies_vary_in_name_and_website() {
    let d = dataset();
    let names: Vec<&str> = d
        .events
        .iter()
        .filter(|e| !is_person(e))
        .filter_map(|e| text(e, "company"))
        .collect();
    for part in [
        "Gesellschaft mit beschränkter Haftung",
        "Intl",
        "Mueller",
        "GMBH",
        "有限公司",
        "Co., Ltd.",
        "International Business Systems Ltd",
    ] {
        assert!(names.iter().any(|n| n.contains(part)), "{part}");
    }
    let sites: Vec<&str> = d.events.iter().filter_map(|e| text(e, "website")).collect();
    let canonical = sites
        .iter()
        .filter(|s| s.starts_with("https://www.") && !s.ends_with('/'))
        .count();
    assert_share("canonical websites", canonical, sites.len(), 0.5, 0.65);
    assert!(sites.iter().any(|s| s.starts_with("www.")));
    assert!(sites.iter().any(|s| s.starts_with("http://")));
    let null_tax = d
        .events
        .iter()
        .filter(|e| e.fields.get("tax_id").is_some_and(|v| v.is_null()))
        .count();
    assert!(null_tax > 0);
}

#[test]
fn birth_dates_country_names_and_invalid_values_follow_their_rates() {
    let d = dataset();
    let mut swapped = 0;
    for rs in by_entity(d).values() {
        let dates: BTreeSet<&str> = rs.iter().filter_map(|r| text(r, "birth_date")).collect();
        if dates.len() == 2 {
            let v: Vec<&str> = dates.into_iter().collect();
            let (a, b) = (&v[0], &v[1]);
            swapped += usize::from(a[..4] == b[..4] && a[5..7] == b[8..10] && a[8..10] == b[5..7]);
        }
    }
    assert!(swapped > 5, "{swapped}");

    let p = Profile {
        date_format_rate: 0.3,
        country_name_rate: 0.3,
        invalid_value_rate: 0.1,
        ..Profile::default_profile(3000)
    };
    let data = generate(&p);
    let dates: Vec<&str> = data
        .events
        .iter()
        .filter_map(|e| text(e, "birth_date"))
        .collect();
    let other_format = dates
        .iter()
        .filter(|d| d.contains('.') || d.contains('/'))
        .count();
    assert_share("non-ISO dates", other_format, dates.len(), 0.25, 0.35);
    let countries: Vec<&str> = data
        .events
        .iter()
        .filter_map(|e| text(e, "country"))
        .collect();
    let named = countries.iter().filter(|c| c.len() != 2).count();
    assert!(countries.contains(&"中国") && countries.contains(&"Deutschland"));
    assert_share("country names", named, countries.len(), 0.2, 0.32);
    let invalid = data
        .events
        .iter()
        .filter(|e| {
            text(e, "phone") == Some("n/a")
                || text(e, "email") == Some("keine Angabe")
                || text(e, "birth_date") == Some("1985-02-30")
        })
        .count();
    assert_share("invalid values", invalid, data.events.len(), 0.08, 0.12);
}

fn key(system: &str, n: u32) -> (String, String) {
    (system.to_string(), format!("{system}-{n:06}"))
}

fn cluster(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// Six records: entity 1 holds a, b, c; entity 2 holds d, e; entity 3 f.
fn small_truth() -> BTreeMap<(String, String), u64> {
    [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 3)]
        .into_iter()
        .map(|(r, e)| (key("crm", r), e))
        .collect()
}

#[test]
fn pairwise_f1_of_a_perfect_clustering_is_one() {
    let truth = small_truth();
    let predicted = truth
        .iter()
        .map(|(k, &e)| (k.clone(), cluster(e as u128)))
        .collect();
    let s = pairwise_f1(&truth, &predicted);
    assert_eq!(
        (s.true_pairs, s.predicted_pairs, s.correct_pairs),
        (4, 4, 4)
    );
    assert_eq!((s.precision, s.recall, s.f1), (1.0, 1.0, 1.0));
}

#[test]
fn pairwise_f1_of_one_big_cluster_has_low_precision() {
    let truth = small_truth();
    let predicted = truth.keys().map(|k| (k.clone(), cluster(7))).collect();
    let s = pairwise_f1(&truth, &predicted);
    assert_eq!(
        (s.true_pairs, s.predicted_pairs, s.correct_pairs),
        (4, 15, 4)
    );
    assert_eq!(s.recall, 1.0);
    assert!((s.precision - 4.0 / 15.0).abs() < 1e-12);
}

#[test]
fn pairwise_f1_of_singletons_is_zero() {
    let truth = small_truth();
    let s = pairwise_f1(&truth, &BTreeMap::new());
    assert_eq!((s.predicted_pairs, s.correct_pairs), (0, 0));
    assert_eq!((s.recall, s.f1), (0.0, 0.0));
}

#[test]
fn pairwise_f1_of_a_known_example() {
    // Clusters {a, b}, {c, d}, {e}, f absent (a singleton); a record the
    // truth does not know is ignored.
    let truth = small_truth();
    let mut predicted: BTreeMap<(String, String), Uuid> = [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)]
        .into_iter()
        .map(|(r, c)| (key("crm", r), cluster(c)))
        .collect();
    predicted.insert(key("erp", 1), cluster(1));
    let s = pairwise_f1(&truth, &predicted);
    // True pairs: ab ac bc de = 4. Predicted: ab cd = 2. Correct: ab = 1.
    assert_eq!(
        (s.true_pairs, s.predicted_pairs, s.correct_pairs),
        (4, 2, 1)
    );
    assert_eq!((s.precision, s.recall), (0.5, 0.25));
    assert!((s.f1 - 1.0 / 3.0).abs() < 1e-12);
}
