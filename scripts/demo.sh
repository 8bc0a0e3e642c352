#!/usr/bin/env bash
# The main job, on real parts: an ERP (Odoo's res_partner on PostgreSQL), a
# CRM (SuiteCRM's contacts on MariaDB) and a CSV drop folder (Salesforce Data
# Loader exports) kept in sync through the hub.
#
# Starts, on free loopback ports with temp dirs removed at exit: nats-server
# (JetStream), PostgreSQL (wal_level=logical), MariaDB (row binlog), `mdhub
# serve`, and one `mdhub connector run` per system. Then shows the initial
# loads, the golden records, and one edit in each system (plain SQL, a new
# export file), waiting after each until every system holds the new value.
# Exits 0 only if every system converged.
#
# Environment:
#   MDHUB_BIN=path        use this mdhub binary instead of building release
#   MDHUB_DEMO_TIMEOUT=s  seconds to wait for each step (default 60)
#   MDHUB_DEMO_KEEP=1     keep the temp dir (configs, logs, data) at exit
#   RUST_LOG              log filter of the hub and connectors (default info;
#                         their logs are in the temp dir, tails shown on failure)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
demo_files="$repo/scripts/demo"
timeout_s=${MDHUB_DEMO_TIMEOUT:-60}
# Names like "Müller" are padded in characters, not bytes.
case "${LC_ALL:-${LC_CTYPE:-${LANG:-}}}" in
  *UTF-8* | *utf8*) ;;
  *) export LC_ALL=C.UTF-8 ;;
esac

# ------------------------------------------------------------------ output

bold=$'\e[1m' green=$'\e[32m' red=$'\e[31m' off=$'\e[0m'
[ -t 1 ] || bold="" green="" red="" off=""
step_no=0
step() { step_no=$((step_no + 1)); printf '\n%s== %d. %s ==%s\n' "$bold" "$step_no" "$*" "$off"; }
say() { printf '   %s\n' "$*"; }

# ------------------------------------------------- dependencies and binary

dir=$(mktemp -d "${TMPDIR:-/tmp}/mdhub-demo.XXXXXX")
mkdir -p "$dir/logs"
if ! scripts/install-deps.sh > "$dir/logs/install-deps.log" 2>&1; then
  cat "$dir/logs/install-deps.log" >&2
  echo "demo: installing the dependencies failed (above)" >&2
  rm -rf "$dir"
  exit 1
fi
if [ -n "${MDHUB_BIN:-}" ]; then
  mdhub=$MDHUB_BIN
else
  cargo build --release --bin mdhub
  mdhub="$repo/target/release/mdhub"
fi
[ -x "$mdhub" ] || { echo "demo: no mdhub binary at $mdhub" >&2; rm -rf "$dir"; exit 1; }

# The nats-server install-deps.sh put in pip's scripts dir, else PATH.
nats_server="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server"
[ -x "$nats_server" ] || nats_server=$(command -v nats-server)
# PostgreSQL: on PATH, else Debian's newest /usr/lib/postgresql/*/bin.
pg_bin=$(dirname "$(command -v initdb 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)")
mariadbd=$(command -v mariadbd 2>/dev/null || echo /usr/sbin/mariadbd)

# ----------------------------------------------------- processes, cleanup

pids=()      # name=pid of every background process, stopped in reverse
pg_data=""   # set once PostgreSQL runs (stopped with pg_ctl)
as_pg=()     # runuser prefix: initdb and postgres refuse to run as root

stop_pid() { # name pid: SIGTERM, up to 15 s, then SIGKILL
  local pid=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  echo "demo: $1 did not stop in 15 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local i entry
  # Connectors first: PostgreSQL's fast shutdown waits for open replication
  # connections.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    entry=${pids[$i]}
    stop_pid "${entry%%=*}" "${entry#*=}"
    # PostgreSQL (started before the hub) once the connectors are gone.
    if [ "${entry%%=*}" = hub ] && [ -n "$pg_data" ]; then
      "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m fast -t 30 stop > /dev/null 2>&1 ||
        "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop > /dev/null 2>&1 || true
      pg_data=""
    fi
  done
  if [ -n "$pg_data" ]; then
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop > /dev/null 2>&1 || true
  fi
  if [ "${MDHUB_DEMO_KEEP:-}" = 1 ]; then
    echo "demo: kept $dir"
  else
    rm -rf "$dir"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_bg() { # name logfile command...: starts a process in the background
  local name=$1 log=$2
  shift 2
  "$@" > "$log" 2>&1 &
  pids+=("$name=$!")
}

log_of() { echo "$dir/logs/$1.log"; }

fail() { # message [name...]: what did not happen, and the tails of the logs
  local name
  printf '\n%sFAILED: %s%s\n' "$red" "$1" "$off"
  shift
  for name in "$@"; do
    printf -- '--- last lines of %s ---\n' "$(log_of "$name")"
    tail -n 25 "$(log_of "$name")" 2>/dev/null | sed $'s/\e\[[0-9;]*m//g' || true
  done
  [ "${MDHUB_DEMO_KEEP:-}" = 1 ] || echo "(MDHUB_DEMO_KEEP=1 keeps the configs, logs and data for a look)"
  exit 1
}

# A process of ours that is no longer running, if any.
dead_process() {
  local entry
  for entry in "${pids[@]}"; do
    kill -0 "${entry#*=}" 2>/dev/null || { echo "${entry%%=*}"; return 0; }
  done
  return 1
}

# wait_until "what" command...: polls the command until it succeeds, at most
# $timeout_s seconds; fails early when one of our processes has died.
wait_until() {
  local what=$1 deadline=$((SECONDS + timeout_s)) dead
  shift
  until "$@" > /dev/null 2>&1; do
    if dead=$(dead_process); then
      fail "$dead exited while waiting for $what" "$dead"
    fi
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

tcp_open() { (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- servers

step "Starting the servers (loopback ports, temp dir $dir)"

nats_port=$(free_port)
cat > "$dir/nats.conf" <<CONF
listen: 127.0.0.1:$nats_port
jetstream { store_dir: "$dir/nats", sync_interval: always }
CONF
start_bg nats "$(log_of nats)" "$nats_server" -c "$dir/nats.conf"
wait_until "nats-server" tcp_open "$nats_port" || fail "nats-server did not listen" nats
nats_url="nats://127.0.0.1:$nats_port"
say "nats-server $("$nats_server" --version | sed 's/.* //') (JetStream)   $nats_url"

# PostgreSQL with Odoo's res_partner. As root, initdb and postgres run as
# the postgres user on a directory it owns.
pg_dir="$dir/pg"
mkdir -p "$pg_dir"
pg_user=$(id -un)
if [ "$(id -u)" = 0 ]; then
  chmod 755 "$dir"
  chown postgres: "$pg_dir"
  as_pg=(runuser -u postgres --)
  pg_user=postgres
fi
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U "$pg_user" --auth=trust \
  --encoding=UTF8 --locale=C --no-sync > "$(log_of postgres-initdb)" 2>&1 ||
  fail "initdb failed" postgres-initdb
pg_port=$(free_port)
pg_data="$pg_dir/data"
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_dir/postgres.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10" \
  start > "$(log_of postgres-start)" 2>&1 || {
  cp "$pg_dir/postgres.log" "$(log_of postgres)" 2>/dev/null || true
  fail "PostgreSQL did not start" postgres-start postgres
}
ln -sf "$pg_dir/postgres.log" "$(log_of postgres)"
pg() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U "$pg_user" "$@"; }
pg -d postgres -c "CREATE DATABASE odoo" > /dev/null
pg -d odoo -f "$repo/tests/data/odoo_res_partner.sql" > /dev/null
pg -d odoo -f "$demo_files/odoo_seed.sql" > /dev/null
odoo_sql() { pg -d odoo -A -t -c "$1"; }
say "PostgreSQL $("$pg_bin/postgres" --version | sed -E 's/^[^0-9]*([0-9.]+).*/\1/') (wal_level=logical)  odoo.res_partner on 127.0.0.1:$pg_port"

# MariaDB with SuiteCRM's contacts, binary log in row format with full rows
# and column names (what the connector reads).
my_dir="$dir/mariadb"
mkdir -p "$my_dir/tmp"
my_user=$(id -un)
mariadb-install-db --no-defaults --datadir="$my_dir/data" --tmpdir="$my_dir/tmp" \
  --user="$my_user" --auth-root-authentication-method=normal --skip-test-db \
  > "$(log_of mariadb-install)" 2>&1 || fail "mariadb-install-db failed" mariadb-install
my_port=$(free_port)
start_bg mariadb "$(log_of mariadb)" "$mariadbd" --no-defaults \
  --datadir="$my_dir/data" --tmpdir="$my_dir/tmp" --user="$my_user" \
  --port="$my_port" --bind-address=127.0.0.1 --socket="$my_dir/mariadb.sock" \
  --pid-file="$my_dir/mariadb.pid" --skip-name-resolve \
  --log-bin="$my_dir/data/binlog" --server-id=1 --binlog-format=ROW \
  --binlog-row-image=FULL --binlog-row-metadata=FULL
my() {
  mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P "$my_port" -u root \
    --connect-timeout=2 --default-character-set=utf8mb4 --batch --skip-column-names "$@"
}
wait_until "MariaDB" my -e "SELECT 1" || fail "MariaDB did not answer" mariadb
my -e "CREATE DATABASE suitecrm"
my suitecrm < "$repo/tests/data/suitecrm.sql"
my suitecrm < "$demo_files/suitecrm_seed.sql"
crm_sql() { my suitecrm -e "$1"; }
say "MariaDB $(my -e 'SELECT VERSION()' | sed 's/-.*//') (binlog ROW, FULL image+metadata)  suitecrm.contacts on 127.0.0.1:$my_port"

# The Salesforce drop folder: Data Loader's first export is waiting.
csv_dir="$dir/salesforce"
mkdir -p "$csv_dir/inbox" "$csv_dir/done" "$csv_dir/outbox"
cp "$demo_files/salesforce_export_1.csv" "$csv_dir/inbox/contacts-0001.csv"
say "CSV drop folder (Salesforce Data Loader layout)  $csv_dir/inbox: contacts-0001.csv"

# ------------------------------------------------------------ hub, connectors

hub_port=$(free_port)
hub="http://127.0.0.1:$hub_port"
# The API wants a bearer token; the config holds only its SHA-256. The
# header goes to curl from a file, not on its command line.
token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
token_sha256=$("$mdhub" token-hash "$token")
(umask 077 && echo "Authorization: Bearer $token" > "$dir/auth-header")
cat > "$dir/hub.toml" <<TOML
# The demo hub: three systems; German national phone numbers.
data_dir = "$dir/hub-data"
listen = "127.0.0.1:$hub_port"
[system.erp]
region = "DE"
[system.crm]
region = "DE"
[system.oa]
region = "DE"
[survivorship]
source_priority = ["erp", "crm", "oa"]
# The demo's edits win wherever they are made: the latest change counts.
[survivorship.fields]
city = "most_recent"
job_title = "most_recent"
[[token]]
name = "demo"
role = "reader"
sha256 = "$token_sha256"
TOML
export RUST_LOG=${RUST_LOG:-info}
start_bg hub "$(log_of hub)" "$mdhub" serve --config "$dir/hub.toml" --nats "$nats_url"
wait_until "the hub's /healthz" curl -sf "$hub/healthz" || fail "mdhub serve did not answer /healthz" hub
say "mdhub serve                            $hub  (systems erp, crm, oa)"

erp_metrics=$(free_port) crm_metrics=$(free_port) oa_metrics=$(free_port)
export DEMO_ODOO_URL="postgres://$pg_user@127.0.0.1:$pg_port/odoo"
export DEMO_SUITECRM_URL="mysql://root@127.0.0.1:$my_port/suitecrm"
cat > "$dir/erp.toml" <<TOML
system = "erp"
mapping = "odoo_res_partner"
state_dir = "$dir/state-erp"
metrics_listen = "127.0.0.1:$erp_metrics"
[postgres]
url_env = "DEMO_ODOO_URL"
table = "res_partner"
archive_column = "active"
modified_column = "write_date"
TOML
cat > "$dir/crm.toml" <<TOML
system = "crm"
mapping = "suitecrm_contacts"
state_dir = "$dir/state-crm"
metrics_listen = "127.0.0.1:$crm_metrics"
[mysql]
url_env = "DEMO_SUITECRM_URL"
table = "contacts"
server_id = 4101
archive_column = "deleted"
modified_column = "date_modified"
suitecrm_email = true
TOML
cat > "$dir/oa.toml" <<TOML
system = "oa"
mapping = "$repo/deploy/connectors/salesforce_contacts.mapping.toml"
state_dir = "$dir/state-oa"
metrics_listen = "127.0.0.1:$oa_metrics"
[csv]
inbox = "$csv_dir/inbox"
done = "$csv_dir/done"
outbox = "$csv_dir/outbox"
layout = "salesforce_contacts"
modified_column = "LastModifiedDate"
poll_interval = 0.5
TOML
for sys in erp crm oa; do
  start_bg "connector-$sys" "$(log_of "connector-$sys")" \
    "$mdhub" connector run --config "$dir/$sys.toml" --nats "$nats_url"
done
for sys in erp crm oa; do
  port_var="${sys}_metrics"
  wait_until "the $sys connector's /metrics" curl -sf "http://127.0.0.1:${!port_var}/metrics" ||
    fail "the $sys connector did not serve /metrics" "connector-$sys"
done
say "mdhub connector run  erp = Odoo/PostgreSQL   metrics http://127.0.0.1:$erp_metrics/metrics"
say "mdhub connector run  crm = SuiteCRM/MariaDB  metrics http://127.0.0.1:$crm_metrics/metrics"
say "mdhub connector run  oa  = Salesforce CSV    metrics http://127.0.0.1:$oa_metrics/metrics"

# ---------------------------------------------------------- reading values

# The people the demo follows, with their key in each system.
names=("Anna Schmidt" "Ben Müller")
odoo_ids=(1 2)
crm_ids=(c0ffee00-0000-4000-8000-000000000001 c0ffee00-0000-4000-8000-000000000002)
oa_ids=(003A000000AnnaS 003A000000BenMu)

# Canonical field -> column in Odoo, SuiteCRM, Salesforce.
odoo_col() { case $1 in city) echo city ;; job_title) echo function ;; esac; }
crm_col() { case $1 in city) echo primary_address_city ;; job_title) echo title ;; esac; }
oa_col() { case $1 in city) echo MailingCity ;; job_title) echo Title ;; esac; }

odoo_value() { odoo_sql "SELECT coalesce($(odoo_col "$1"), '') FROM res_partner WHERE id = $2"; }
crm_value() { crm_sql "SELECT IFNULL($(crm_col "$1"), '') FROM contacts WHERE id = '$2'"; }
oa_value() { python3 "$demo_files/csv_value.py" "$(oa_col "$1")" "$2" "$csv_dir/done" "$csv_dir/outbox"; }
api() { curl -sf -H @"$dir/auth-header" "$hub$1"; }
golden_id() { api "/v1/sources/$1/$2" | jq -er .golden_id; }
golden() { api "/v1/customers/$(golden_id erp "$1")"; }
golden_value() { golden "$1" | jq -r --arg f "$2" '.values[$f] // ""'; }

# The hub knows every seeded record: 5 Odoo partners, 3 SuiteCRM contacts,
# 3 Salesforce contacts. Sets $missing to the first it does not know.
seeded=(erp/1 erp/2 erp/3 erp/4 erp/5
  crm/c0ffee00-0000-4000-8000-000000000001 crm/c0ffee00-0000-4000-8000-000000000002
  crm/c0ffee00-0000-4000-8000-000000000003
  oa/003A000000AnnaS oa/003A000000BenMu oa/003A000000Grace)
missing=""
all_loaded() {
  local key
  for key in "${seeded[@]}"; do
    golden_id "${key%%/*}" "${key#*/}" > /dev/null || { missing=$key; return 1; }
  done
  missing=""
}

# Each demo person is one golden record holding all three source records.
all_linked() {
  local i g
  for i in 0 1; do
    g=$(golden_id erp "${odoo_ids[$i]}") || return 1
    [ "$(golden_id crm "${crm_ids[$i]}")" = "$g" ] || return 1
    [ "$(golden_id oa "${oa_ids[$i]}")" = "$g" ] || return 1
  done
}

# Every system and the golden record hold $2 in field $1 for person $3.
converged() {
  local field=$1 want=$2 i=$3
  [ "$(odoo_value "$field" "${odoo_ids[$i]}")" = "$want" ] &&
    [ "$(crm_value "$field" "${crm_ids[$i]}")" = "$want" ] &&
    [ "$(oa_value "$field" "${oa_ids[$i]}")" = "$want" ] &&
    [ "$(golden_value "${odoo_ids[$i]}" "$field")" = "$want" ]
}

# cell text width: the text padded to width characters.
cell() { printf '%s%*s' "$1" $(($2 - ${#1})) ''; }

# table field: the field's value per person in each system.
table() {
  local field=$1 i
  echo "   $(cell "$field" 14)$(cell "Odoo (erp)" 20)$(cell "SuiteCRM (crm)" 20)$(cell "Salesforce (oa)" 20)golden record"
  for i in 0 1; do
    echo "   $(cell "${names[$i]}" 14)$(cell "$(odoo_value "$field" "${odoo_ids[$i]}")" 20)$(cell "$(crm_value "$field" "${crm_ids[$i]}")" 20)$(cell "$(oa_value "$field" "${oa_ids[$i]}")" 20)$(golden_value "${odoo_ids[$i]}" "$field")"
  done
}

# After an edit: wait until field $1 of person $3 is $2 everywhere, print
# the table, or name what did not converge.
expect() {
  local field=$1 want=$2 i=$3 started=$SECONDS
  if wait_until "$field=$want everywhere" converged "$field" "$want" "$i"; then
    say "converged in $((SECONDS - started)) s:"
    table "$field"
    return 0
  fi
  table "$field"
  local got
  got=$(odoo_value "$field" "${odoo_ids[$i]}")
  [ "$got" = "$want" ] || fail "Odoo (erp) holds $field=\"$got\" for ${names[$i]}, not \"$want\"" connector-erp hub
  got=$(crm_value "$field" "${crm_ids[$i]}")
  [ "$got" = "$want" ] || fail "SuiteCRM (crm) holds $field=\"$got\" for ${names[$i]}, not \"$want\"" connector-crm hub
  got=$(oa_value "$field" "${oa_ids[$i]}")
  [ "$got" = "$want" ] || fail "Salesforce (oa) files hold $field=\"$got\" for ${names[$i]}, not \"$want\"" connector-oa hub
  got=$(golden_value "${odoo_ids[$i]}" "$field")
  fail "the golden record holds $field=\"$got\" for ${names[$i]}, not \"$want\"" hub
}

# ------------------------------------------------------------------ the demo

step "Initial loads: each connector reads its system and publishes every record"
started=$SECONDS
wait_until "the initial loads" all_loaded ||
  fail "the hub has no golden record for the source record $missing" connector-erp connector-crm connector-oa hub
say "the hub holds all 11 source records after $((SECONDS - started)) s:"
say "  Odoo res_partner 1-5, SuiteCRM contacts Anna, Ben, Frank, Salesforce Anna, Ben, Grace"
wait_until "matching" all_linked ||
  fail "Anna and Ben were not each matched into one golden record" hub

step "Golden records: the hub matched the same people across the systems"
say "(GET $hub/v1/customers/{golden_id})"
for i in 0 1; do
  golden "${odoo_ids[$i]}" | jq -r '
    "   \(.values.full_name // (.values.given_name + " " + .values.family_name))  golden id \(.golden_id)",
    "     links: \([.links[] | "\(.system)/\(.record_id)"] | join(", "))",
    "     email=\(.values.email)  phone=\(.values.phone)  city=\(.values.city)  job_title=\(.values.job_title)"'
done
say "SuiteCRM spelled Anna's e-mail ANNA.Schmidt@Example.com and her phone 030 1234567,"
say "Ben's phone +49 (89) 765-4321: the hub normalized both and linked the records."
table city

step "Edit in Odoo (psql): Anna Schmidt moved to Potsdam"
sql="UPDATE res_partner SET city = 'Potsdam', write_date = now() at time zone 'utc' WHERE id = 1"
say "psql odoo -c \"$sql\""
odoo_sql "$sql" > /dev/null
expect city Potsdam 0
say "SuiteCRM got an UPDATE from its connector; Salesforce got a file for its importer:"
for f in "$csv_dir"/outbox/*-update.csv; do
  say "  outbox/$(basename "$f"):  $(paste -sd ' ' "$f")"
done

step "Edit in SuiteCRM (mariadb): Ben Müller is now Head of Purchasing"
sql="UPDATE contacts SET title = 'Head of Purchasing', date_modified = UTC_TIMESTAMP() WHERE id = '${crm_ids[1]}'"
say "mariadb suitecrm -e \"$sql\""
crm_sql "$sql"
expect job_title "Head of Purchasing" 1

step "New Salesforce export: Anna Schmidt's title changed to Head of Sales"
# Salesforce has imported the hub's update files (Anna's city, Ben's
# title); a user then changed Anna's title, and Data Loader exports again.
now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
{
  head -n 1 "$demo_files/salesforce_export_1.csv"
  echo "\"003A000000AnnaS\",\"false\",\"Anna\",\"Schmidt\",\"Anna.Schmidt@example.com\",\"+49 30 1234567\",\"Head of Sales\",\"Unter den Linden 5\",\"Potsdam\",\"10117\",\"Germany\",\"$now\""
  echo "\"003A000000BenMu\",\"false\",\"Ben\",\"Müller\",\"ben.mueller@example.com\",\"+49 89 7654321\",\"Head of Purchasing\",\"Marienplatz 8\",\"München\",\"80331\",\"Germany\",\"$now\""
  sed -n 4p "$demo_files/salesforce_export_1.csv"
} > "$csv_dir/inbox/.contacts-0002.csv.part"
mv "$csv_dir/inbox/.contacts-0002.csv.part" "$csv_dir/inbox/contacts-0002.csv"
say "dropped contacts-0002.csv into $csv_dir/inbox"
expect job_title "Head of Sales" 0

step "Every system converged"
say "${green}Odoo, SuiteCRM and the Salesforce files agree with the golden records.${off}"
say "write-back files the Salesforce importer would load: $(cd "$csv_dir/outbox" && ls -- *.csv 2>/dev/null | tr '\n' ' ')"
