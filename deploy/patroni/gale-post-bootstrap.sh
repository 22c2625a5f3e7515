#!/bin/sh
# Patroni's post_bootstrap script (/etc/patroni/gale-post-bootstrap.sh, mode
# 0755, readable by postgres): run once, on the node that initialises the
# cluster, with a superuser connection string as its only argument. Creates
# Gale's login role and its database. The role's password (scram-sha-256)
# is read from /etc/patroni/gale-db-password (mode 0600, owned by postgres;
# GALE_DB_PASSWORD_FILE names another) and never put on a command line;
# without that file the role has no password, and can log in only once
# `ALTER ROLE gale PASSWORD '...'` gave it one (pg_hba.conf trusts nobody).
set -eu
file=${GALE_DB_PASSWORD_FILE:-/etc/patroni/gale-db-password}
GALE_DB_PASSWORD=
if [ -r "$file" ]; then
    GALE_DB_PASSWORD=$(cat "$file")
fi
export GALE_DB_PASSWORD
psql -X -v ON_ERROR_STOP=1 "$1" <<'SQL'
\getenv pw GALE_DB_PASSWORD
SELECT :'pw' = '' AS no_password \gset
\if :no_password
CREATE ROLE gale LOGIN;
\else
CREATE ROLE gale LOGIN PASSWORD :'pw';
\endif
CREATE DATABASE gale OWNER gale;
SQL
