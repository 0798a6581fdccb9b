# Sourced by scripts/test.sh: makes sure the PostgreSQL API-key store tests
# have a server, and exports RAMPART_TEST_POSTGRES_URL for them.
#
# If RAMPART_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test)
# answers, it is used. Otherwise a private server is started on a free port
# in a temporary directory (trust authentication, loopback only, database
# `test`), installing PostgreSQL with apt-get if needed, and stopped when the
# test script exits. The tests never skip: without a server they fail.
# Needs `apt_install` and `say` from scripts/test.sh.

pg_url="${RAMPART_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
command -v psql >/dev/null || apt_install postgresql-client

if psql "$pg_url" -qtAc 'select 1' >/dev/null 2>&1; then
    export RAMPART_TEST_POSTGRES_URL="$pg_url"
else
    pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
    [ -n "$(pg_bin)" ] || apt_install postgresql
    bindir="$(pg_bin)"
    [ -x "$bindir/initdb" ] || { echo "error: PostgreSQL server binaries not found" >&2; exit 1; }
    pg_port=55432
    while (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null; do pg_port=$((pg_port + 1)); done
    pg_dir="$(mktemp -d /tmp/rampart-pg.XXXXXX)"
    pg_run=()
    if [ "$(id -u)" -eq 0 ]; then
        # initdb refuses to run as root.
        chown postgres "$pg_dir"
        pg_run=(runuser -u postgres --)
    fi
    say "starting a private PostgreSQL on 127.0.0.1:$pg_port"
    "${pg_run[@]}" "$bindir/initdb" -D "$pg_dir/data" -A trust -U postgres >"$pg_dir/initdb.log" 2>&1 \
        || { cat "$pg_dir/initdb.log" >&2; exit 1; }
    "${pg_run[@]}" "$bindir/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir" start >/dev/null \
        || { cat "$pg_dir/server.log" >&2; exit 1; }
    stop_postgres() {
        "${pg_run[@]}" "$bindir/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    }
    trap stop_postgres EXIT
    "$bindir/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres test
    export RAMPART_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/test"
fi
