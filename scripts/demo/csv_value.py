#!/usr/bin/env python3
"""What the CSV system (a Salesforce org fed by Data Loader) holds for one
record's column: the value in the newest file that carries it, among the
exports it sent (the connector's done folder) and the write-back files the
hub's connector left for its importer (the outbox).

Usage: csv_value.py COLUMN RECORD_ID DIR...
Prints the value (empty if no file carries it). Files are taken in
modification-time order, then by name; hidden files and temporary names are
skipped, as the connector and the importer skip them.
"""
import csv
import os
import sys


def files(dirs):
    found = []
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            path = os.path.join(d, name)
            if name.startswith(".") or name.endswith((".tmp", ".part")):
                continue
            if not os.path.isfile(path) or not name.endswith(".csv"):
                continue
            found.append((os.stat(path).st_mtime_ns, name, path))
    return [p for _, _, p in sorted(found)]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    column, record_id, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
    value = ""
    for path in files(dirs):
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row.get("Id") == record_id and column in row:
                    value = row[column]
    print(value)


if __name__ == "__main__":
    main()
