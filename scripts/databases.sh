#!/usr/bin/env bash
# Real database servers for the writer probe's tests: PostgreSQL 15 and
# MariaDB 10.11 (Debian bookworm's packages, installed on first use), each
# as a primary and a streaming replica, on loopback addresses of their own
# (the same port on different addresses, as RDS endpoints are), TLS on with
# a CA made here (target/databases/tls/ca.pem).
#
#   PostgreSQL primary  127.0.0.11:15432   replica  127.0.0.12:15432
#   MariaDB    primary  127.0.0.21:13306   replica  127.0.0.22:13306
#
# Logins: `prober` / `probe-secret` (what the probe uses), `ballast` /
# `ballast-admin` (what the tests use to write and to pause replication).
#
# Idempotent and safe to run from several test processes at once (flock):
# servers already up are left as they are. `databases.sh stop` stops them.
# Needs root to install the packages (CI runs as root) and runs the servers
# as the packages' own users (postgres, mysql).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${BALLAST_DB_DIR:-$ROOT/target/databases}"
PG_BIN=/usr/lib/postgresql/15/bin
PG_PORT=15432
MY_PORT=13306
# Debian bookworm's majors, pinned: PostgreSQL 15, MariaDB 10.11.
PG_PACKAGE="postgresql-15"
MY_PACKAGE="mariadb-server=1:10.11.*"

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9

log() { echo "databases: $*" >&2; }

install_packages() {
    local want=()
    [ -x "$PG_BIN/postgres" ] || want+=("$PG_PACKAGE")
    command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || want+=("$MY_PACKAGE")
    [ ${#want[@]} -eq 0 ] && return
    if [ "$(id -u)" -ne 0 ]; then
        log "${want[*]} must be installed, which needs root: run this script as root once (sudo $0), or install them yourself"
        exit 1
    fi
    log "installing ${want[*]} (Debian packages)"
    # The packages' services are not started: the tests start their own.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${want[@]}" >"$DIR/apt.log" 2>&1 \
        || { apt-get update >>"$DIR/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${want[@]}" >>"$DIR/apt.log" 2>&1; } \
        || { cat "$DIR/apt.log" >&2; exit 1; }
}

make_tls() {
    local t="$DIR/tls"
    [ -s "$t/server.pem" ] && return
    mkdir -p "$t"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Ballast test CA" \
        -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
    # A second CA that signed nothing here: a bundle that must not verify.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Another CA" \
        -keyout "$t/other-ca.key" -out "$t/other-ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=ballast.test" \
        -keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:*.ballast.test,DNS:*.rds.ballast.test,IP:127.0.0.11,IP:127.0.0.12,IP:127.0.0.21,IP:127.0.0.22\n' >"$t/san.ext"
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
        -days 3650 -extfile "$t/san.ext" -out "$t/server.pem" 2>/dev/null
    chmod 644 "$t"/*.pem "$t/server.key"
}

pg_up() { "$PG_BIN/pg_isready" -q -h "$1" -p "$PG_PORT" >/dev/null 2>&1; }

# fd 9 (the lock) is not handed to the servers, which outlive this script.
as_postgres() { runuser -u postgres -- "$@" 9>&-; }

start_postgres() {
    local p="$DIR/pg-primary" r="$DIR/pg-replica"
    if pg_up 127.0.0.11 && pg_up 127.0.0.12; then return; fi
    mkdir -p "$DIR/pg-tls" "$DIR/pg-logs"
    chown postgres "$DIR/pg-logs"
    cp "$DIR/tls/server.pem" "$DIR/tls/server.key" "$DIR/pg-tls/"
    chown -R postgres "$DIR/pg-tls"
    chmod 600 "$DIR/pg-tls/server.key"
    if [ ! -s "$p/PG_VERSION" ]; then
        rm -rf "$p" "$r"
        mkdir -p "$p"
        chown postgres "$p"
        printf 'ballast-admin\n' >"$DIR/pg-pw"
        chown postgres "$DIR/pg-pw"
        as_postgres "$PG_BIN/initdb" -D "$p" -U ballast --pwfile="$DIR/pg-pw" -A scram-sha-256 >"$DIR/pg-initdb.log"
        cat >>"$p/postgresql.conf" <<EOF
listen_addresses = '127.0.0.11'
port = $PG_PORT
unix_socket_directories = ''
ssl = on
ssl_cert_file = '$DIR/pg-tls/server.pem'
ssl_key_file = '$DIR/pg-tls/server.key'
wal_level = replica
max_wal_senders = 4
hot_standby = on
EOF
        cat >"$p/pg_hba.conf" <<EOF
hostssl all all 127.0.0.0/8 scram-sha-256
hostssl replication replicator 127.0.0.0/8 scram-sha-256
host all all 127.0.0.0/8 reject
EOF
    fi
    pg_up 127.0.0.11 || as_postgres "$PG_BIN/pg_ctl" -D "$p" -l "$DIR/pg-logs/primary.log" -w start >/dev/null
    PGPASSWORD=ballast-admin "$PG_BIN/psql" -q -h 127.0.0.11 -p "$PG_PORT" -U ballast -d postgres "sslmode=require" -v ON_ERROR_STOP=1 >/dev/null <<'EOF'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'prober') THEN
    CREATE ROLE prober LOGIN PASSWORD 'probe-secret';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') THEN
    CREATE ROLE replicator LOGIN REPLICATION PASSWORD 'replicator-secret';
  END IF;
END $$;
CREATE TABLE IF NOT EXISTS writes (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), note text);
EOF
    if [ ! -s "$r/PG_VERSION" ]; then
        rm -rf "$r"
        mkdir -p "$r"
        chown postgres "$r"
        chmod 700 "$r"
        as_postgres env PGPASSWORD=replicator-secret PGSSLMODE=require "$PG_BIN/pg_basebackup" \
            -h 127.0.0.11 -p "$PG_PORT" -U replicator -D "$r" -R -X stream -c fast >"$DIR/pg-basebackup.log" 2>&1
        sed -i "s/^listen_addresses = '127.0.0.11'/listen_addresses = '127.0.0.12'/" "$r/postgresql.conf"
    fi
    pg_up 127.0.0.12 || as_postgres "$PG_BIN/pg_ctl" -D "$r" -l "$DIR/pg-logs/replica.log" -w start >/dev/null
}

my_up() { mariadb-admin --no-defaults -h "$1" -P "$MY_PORT" -u ballast -pballast-admin --ssl ping >/dev/null 2>&1; }

my_sql() { mariadb --no-defaults -h "$1" -P "$MY_PORT" -u ballast -pballast-admin --ssl "${@:3}" -e "$2"; }

start_mariadb_one() {
    local name="$1" addr="$2" id="$3" d="$DIR/$1"
    my_up "$addr" && return 0
    if [ ! -d "$d/data/mysql" ]; then
        rm -rf "$d"
        mkdir -p "$d/data"
        chown -R mysql "$d"
        mariadb-install-db --no-defaults --user=mysql --datadir="$d/data" --auth-root-authentication-method=socket \
            >"$DIR/$name-install.log" 2>&1
    fi
    chown -R mysql "$d"
    (mariadbd --no-defaults --user=mysql --datadir="$d/data" --bind-address="$addr" --port="$MY_PORT" \
        --socket="$d/sock" --pid-file="$d/pid" --server-id="$id" --log-bin="$d/data/binlog" \
        --ssl-ca="$DIR/tls/ca.pem" --ssl-cert="$DIR/tls/server.pem" --ssl-key="$DIR/tls/server.key" \
        --skip-name-resolve --log-error="$DIR/$name.err" >/dev/null 2>&1 9>&- &)
    for _ in $(seq 1 100); do
        [ -S "$d/sock" ] && break
        sleep 0.1
    done
    mariadb --no-defaults -S "$d/sock" -u root -e "
        CREATE USER IF NOT EXISTS 'ballast'@'%' IDENTIFIED BY 'ballast-admin';
        GRANT ALL ON *.* TO 'ballast'@'%' WITH GRANT OPTION;" 2>/dev/null || true
    for _ in $(seq 1 100); do
        my_up "$addr" && return 0
        sleep 0.1
    done
    cat "$DIR/$name.err" >&2
    return 1
}

start_mariadb() {
    start_mariadb_one my-primary 127.0.0.21 1
    start_mariadb_one my-replica 127.0.0.22 2
    my_sql 127.0.0.21 "
        CREATE USER IF NOT EXISTS 'prober'@'%' IDENTIFIED BY 'probe-secret';
        GRANT SLAVE MONITOR ON *.* TO 'prober'@'%';
        CREATE USER IF NOT EXISTS 'replicator'@'%' IDENTIFIED BY 'replicator-secret';
        GRANT REPLICATION SLAVE ON *.* TO 'replicator'@'%';
        CREATE DATABASE IF NOT EXISTS app;
        CREATE TABLE IF NOT EXISTS app.writes (id BIGINT AUTO_INCREMENT PRIMARY KEY, at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, note TEXT);"
    if ! my_sql 127.0.0.22 "SHOW REPLICA STATUS\G" | grep -q "Master_Host"; then
        local gtid
        gtid=$(my_sql 127.0.0.21 "SELECT @@gtid_binlog_pos" -N -s 2>/dev/null || true)
        # The replica starts from the primary's users and schema, copied
        # (the servers are empty), then follows the binary log.
        my_sql 127.0.0.22 "
            CREATE USER IF NOT EXISTS 'prober'@'%' IDENTIFIED BY 'probe-secret';
            GRANT SLAVE MONITOR ON *.* TO 'prober'@'%';
            CREATE DATABASE IF NOT EXISTS app;
            CREATE TABLE IF NOT EXISTS app.writes (id BIGINT AUTO_INCREMENT PRIMARY KEY, at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, note TEXT);
            SET GLOBAL gtid_slave_pos = '$gtid';
            CHANGE MASTER TO MASTER_HOST='127.0.0.21', MASTER_PORT=$MY_PORT, MASTER_USER='replicator',
              MASTER_PASSWORD='replicator-secret', MASTER_SSL=1, MASTER_USE_GTID=slave_pos;
            START REPLICA;
            SET GLOBAL read_only = ON;"
        # One event through, so that the replica's executed position is the
        # primary's (it stays at the start until an event is applied).
        my_sql 127.0.0.21 "INSERT INTO app.writes (note) VALUES ('replication started')"
    fi
    # Every start, not only the first: a restarted server forgets SET GLOBAL.
    my_sql 127.0.0.22 "SET GLOBAL read_only = ON"
}

stop_all() {
    for d in pg-primary pg-replica; do
        [ -s "$DIR/$d/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$DIR/$d" -m fast -w stop >/dev/null 2>&1 || true
    done
    for d in my-primary my-replica; do
        [ -s "$DIR/$d/pid" ] && kill "$(cat "$DIR/$d/pid")" 2>/dev/null || true
    done
}

case "${1:-start}" in
    stop)
        stop_all
        owner="${TMPDIR:-/tmp}/ballast-databases.owner"
        if [ -s "$owner" ] && [ "$(cat "$owner")" = "$DIR" ]; then rm -f "$owner"; fi
        ;;
    start)
        # The servers listen on fixed loopback addresses: ones another
        # checkout started (another CA, other data) must not be taken for
        # this one's.
        owner="${TMPDIR:-/tmp}/ballast-databases.owner"
        if pg_up 127.0.0.11 || my_up 127.0.0.21; then
            if [ -s "$owner" ] && [ "$(cat "$owner")" != "$DIR" ]; then
                log "the servers on 127.0.0.11/21 belong to $(cat "$owner"): stop them first (BALLAST_DB_DIR=$(cat "$owner") $0 stop)"
                exit 1
            fi
        fi
        echo "$DIR" >"$owner"
        install_packages
        make_tls
        start_postgres
        start_mariadb
        ;;
    *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
