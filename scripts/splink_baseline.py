#!/usr/bin/env python3
"""Splink baseline for the `public_sets` benchmark (tests/benches/public_sets.rs).

Usage:
    splink_baseline.py febrl     DIR/dataset1.csv      (or dataset2.csv)
    splink_baseline.py rldata    DIR/RLdata500.tsv
    splink_baseline.py generator FILE.csv

`generator` reads the CSV the benchmark writes of the generator's records:
`unique_id` (`system:record_id`) and the values the hub holds after
cleansing (customer_type, given_name, family_name, company, email, phone,
mobile, birth_date, street, city, postal_code, country, website, tax_id).

Reads one set file, maps its columns to the same canonical fields the
benchmark sends to mdhub (tests/src/public_sets.rs: given_name,
family_name, street, city, postal_code, birth_date), and deduplicates the
records with Splink on DuckDB, unsupervised:

  - prior (probability that two random records match) from deterministic
    rules (two of given name, family name, birth date equal; for FEBRL also
    birth date and postcode), with an assumed recall of 0.7,
  - u probabilities by random sampling (seeded),
  - m probabilities by expectation maximisation, in two sessions (blocked
    on both names, then on the birth date),
  - pairs scored on the prediction blocking rules, clustered by connected
    components at match probability 0.9.

For the generator the comparisons and rules cover its contact and company
fields too (see `generator_settings`), and u is sampled from up to 10
million pairs.

The ground truth is never read. Prints one JSON object on stdout:
    {"splink_version", "records", "pairs_scored", "seconds", "peak_rss_kib",
     "clusters": {record_id: cluster_id}}
`seconds` runs from reading the file to the clusters (not Python's start or
the imports); `peak_rss_kib` is the process's peak resident set (DuckDB
runs inside it). Splink's own log and progress go to stderr.
"""

import csv
import json
import logging
import resource
import sys
import time


def fail(msg):
    print(f"splink_baseline: {msg}", file=sys.stderr)
    sys.exit(2)


def clean(value, na=None):
    """None for an empty (or `na`) cell, the stripped text otherwise."""
    if value is None:
        return None
    value = value.strip()
    if value == "" or (na is not None and value == na):
        return None
    return value


def iso_from_yyyymmdd(text):
    """20240301 -> 2024-03-01; anything else as given (Splink nulls what is
    not a date)."""
    if text is not None and len(text) == 8 and text.isdigit():
        return f"{text[0:4]}-{text[4:6]}-{text[6:8]}"
    return text


def read_febrl(path):
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        # FEBRL writes a space after every comma.
        reader = csv.DictReader(f, skipinitialspace=True)
        for line_no, r in enumerate(reader, start=2):
            rid = clean(r.get("rec_id"))
            if rid is None:
                fail(f"{path}:{line_no}: field rec_id: empty")
            street = " ".join(
                v
                for v in (
                    clean(r.get("street_number")),
                    clean(r.get("address_1")),
                    clean(r.get("address_2")),
                )
                if v is not None
            )
            rows.append(
                {
                    "unique_id": rid,
                    "given_name": clean(r.get("given_name")),
                    "family_name": clean(r.get("surname")),
                    "street": street or None,
                    "city": clean(r.get("suburb")),
                    "postal_code": clean(r.get("postcode")),
                    "birth_date": iso_from_yyyymmdd(clean(r.get("date_of_birth"))),
                }
            )
    return rows


def read_rldata(path):
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        for row_no, r in enumerate(reader, start=1):
            parts = [clean(r.get(k), na="NA") for k in ("by", "bm", "bd")]
            birth = None
            if all(p is not None for p in parts):
                try:
                    y, m, d = (int(p) for p in parts)
                except ValueError:
                    fail(f"{path}:{row_no + 1}: field by/bm/bd: {parts} are not numbers")
                birth = f"{y:04}-{m:02}-{d:02}"
            rows.append(
                {
                    # Record id: 1-based row number after the header.
                    "unique_id": str(row_no),
                    "given_name": clean(r.get("fname_c1"), na="NA"),
                    "family_name": clean(r.get("lname_c1"), na="NA"),
                    "birth_date": birth,
                }
            )
    return rows


GENERATOR_COLUMNS = (
    "customer_type",
    "given_name",
    "family_name",
    "company",
    "email",
    "phone",
    "mobile",
    "birth_date",
    "street",
    "city",
    "postal_code",
    "country",
    "website",
    "tax_id",
)


def read_generator(path):
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("unique_id",) + GENERATOR_COLUMNS if c not in reader.fieldnames]
        if missing:
            fail(f"{path}: header lacks {missing}")
        for line_no, r in enumerate(reader, start=2):
            rid = clean(r.get("unique_id"))
            if rid is None:
                fail(f"{path}:{line_no}: field unique_id: empty")
            row = {"unique_id": rid}
            for c in GENERATOR_COLUMNS:
                row[c] = clean(r.get(c))
            rows.append(row)
    return rows


def person_settings(kind, block_on, cl):
    """Comparisons, prediction rules and deterministic rules of the public
    sets (people: names, birth date; FEBRL also the address)."""
    comparisons = [
        cl.NameComparison("given_name"),
        cl.NameComparison("family_name"),
        cl.DateOfBirthComparison(
            "birth_date", input_is_string=True, datetime_format="%Y-%m-%d"
        ),
    ]
    predict_rules = [
        block_on("given_name"),
        block_on("family_name"),
        block_on("birth_date"),
    ]
    # Two of the three person fields equal. (All three equal finds no pair
    # in RLdata500: each of its duplicates has one field damaged.)
    deterministic = [
        block_on("given_name", "family_name"),
        block_on("given_name", "birth_date"),
        block_on("family_name", "birth_date"),
    ]
    if kind == "febrl":
        comparisons += [
            cl.LevenshteinAtThresholds("street", [1, 3]),
            cl.JaroWinklerAtThresholds("city", [0.9]),
            cl.LevenshteinAtThresholds("postal_code", [1]),
        ]
        predict_rules.append(block_on("postal_code"))
        deterministic.append(block_on("birth_date", "postal_code"))
    em_sessions = [block_on("given_name", "family_name"), block_on("birth_date")]
    return comparisons, predict_rules, deterministic, em_sessions


def generator_settings(block_on, cl):
    """People and companies with contact data: names, company, e-mail,
    phones, birth date, address, website, tax id. Prediction rules pair
    records sharing an e-mail, a phone, a mobile, a tax id, both names, a
    family name and birth date, a family name and postcode, or a company
    name and postcode: single names or birth dates alone give blocks too
    large at a million records."""
    comparisons = [
        cl.NameComparison("given_name"),
        cl.NameComparison("family_name"),
        cl.JaroWinklerAtThresholds("company", [0.95, 0.88]),
        cl.EmailComparison("email"),
        cl.ExactMatch("phone"),
        cl.ExactMatch("mobile"),
        cl.DateOfBirthComparison(
            "birth_date", input_is_string=True, datetime_format="%Y-%m-%d"
        ),
        cl.LevenshteinAtThresholds("street", [2, 4]),
        cl.JaroWinklerAtThresholds("city", [0.9]),
        cl.ExactMatch("postal_code"),
        cl.ExactMatch("country"),
        cl.ExactMatch("website"),
        cl.ExactMatch("tax_id"),
        cl.ExactMatch("customer_type"),
    ]
    predict_rules = [
        block_on("email"),
        block_on("phone"),
        block_on("mobile"),
        block_on("tax_id"),
        block_on("given_name", "family_name"),
        block_on("family_name", "birth_date"),
        block_on("family_name", "postal_code"),
        block_on("company", "postal_code"),
    ]
    deterministic = [
        block_on("email"),
        block_on("given_name", "family_name", "birth_date"),
        block_on("company", "postal_code"),
    ]
    em_sessions = [
        block_on("given_name", "family_name"),
        block_on("birth_date"),
        block_on("email"),
    ]
    return comparisons, predict_rules, deterministic, em_sessions


def main():
    kinds = ("febrl", "rldata", "generator")
    if len(sys.argv) != 3 or sys.argv[1] not in kinds:
        fail("usage: splink_baseline.py febrl|rldata|generator FILE")
    kind, path = sys.argv[1], sys.argv[2]

    import splink
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    started = time.monotonic()
    if kind == "febrl":
        rows = read_febrl(path)
    elif kind == "rldata":
        rows = read_rldata(path)
    else:
        rows = read_generator(path)
    if not rows:
        fail(f"{path}: no records")

    if kind == "generator":
        comparisons, predict_rules, deterministic, em_sessions = generator_settings(
            block_on, cl
        )
    else:
        comparisons, predict_rules, deterministic, em_sessions = person_settings(
            kind, block_on, cl
        )

    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=predict_rules,
        retain_intermediate_calculation_columns=False,
    )
    db_api = DuckDBAPI()
    table = db_api.register(rows)
    linker = Linker(table, settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        deterministic, recall=0.7
    )
    max_pairs = 1e7 if kind == "generator" else 1e6
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=1)
    for session in em_sessions:
        linker.training.estimate_parameters_using_expectation_maximisation(session)
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.9
    )
    clusters = {
        str(r["unique_id"]): str(r["cluster_id"])
        for r in clustered.as_record_list()
    }
    pairs_scored = len(predictions.as_record_list())
    seconds = time.monotonic() - started
    json.dump(
        {
            "splink_version": splink.__version__,
            "records": len(rows),
            "pairs_scored": pairs_scored,
            "seconds": seconds,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "clusters": clusters,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
