#!/usr/bin/env python3
"""Splink baseline for the `public_sets` benchmark (tests/benches/public_sets.rs).

Usage:
    splink_baseline.py febrl   DIR/dataset1.csv      (or dataset2.csv)
    splink_baseline.py rldata  DIR/RLdata500.tsv

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

The ground truth is never read. Prints one JSON object on stdout:
    {"splink_version", "records", "pairs_scored", "seconds",
     "clusters": {record_id: cluster_id}}
`seconds` runs from reading the file to the clusters (not Python's start or
the imports). Splink's own log goes to stderr.
"""

import csv
import json
import logging
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


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("febrl", "rldata"):
        fail("usage: splink_baseline.py febrl|rldata FILE")
    kind, path = sys.argv[1], sys.argv[2]

    import splink
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    started = time.monotonic()
    rows = read_febrl(path) if kind == "febrl" else read_rldata(path)
    if not rows:
        fail(f"{path}: no records")

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
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("given_name", "family_name")
    )
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("birth_date")
    )
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
            "clusters": clusters,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
