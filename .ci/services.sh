#!/usr/bin/env bash
# Services the tests need (issue 12): a local PostgreSQL for the MLflow server-mode test.
# Idempotent and quick when already done: installs the Debian package only if missing (root + apt),
# starts the cluster, creates role `robustify` (password `robustify`, CREATEDB) on 127.0.0.1:5432.
# Prints the URI the tests use; exits 0 even when it cannot set PostgreSQL up (tests then skip),
# unless ROBUSTIFY_REQUIRE_PG=1.
set -uo pipefail
PG_URI="postgresql://robustify:robustify@127.0.0.1:5432/postgres"
fail() { echo "postgres: $*" >&2; [[ "${ROBUSTIFY_REQUIRE_PG:-0}" == 1 ]] && exit 1; exit 0; }

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  command -v apt-get >/dev/null && [[ $(id -u) == 0 ]] || fail "not installed and cannot apt-get install postgresql"
  echo "postgres: installing the Debian package"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || fail "apt-get install postgresql failed"
fi
if command -v pg_lsclusters >/dev/null; then
  read -r ver name _ < <(pg_lsclusters -h | head -1)
  [[ -n "${ver:-}" ]] || { pg_createcluster "$(ls /usr/lib/postgresql | sort -V | tail -1)" main >/dev/null && read -r ver name _ < <(pg_lsclusters -h | head -1); }
  pg_lsclusters -h | grep -q online || pg_ctlcluster "$ver" "$name" start || fail "pg_ctlcluster $ver $name start failed"
else
  service postgresql start || fail "service postgresql start failed"
fi
for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
pg_isready -q -h 127.0.0.1 || fail "server not ready on 127.0.0.1:5432"
as_pg() { if [[ $(id -u) == 0 ]]; then su postgres -c "psql -qtAX -c \"$1\""; else psql -qtAX -h 127.0.0.1 -U postgres -c "$1"; fi; }
[[ "$(as_pg "SELECT 1 FROM pg_roles WHERE rolname='robustify'")" == 1 ]] \
  || as_pg "CREATE ROLE robustify LOGIN CREATEDB PASSWORD 'robustify'" >/dev/null || fail "cannot create role robustify"
echo "postgres: ready at $PG_URI"
