#!/bin/sh
# Patroni's post_bootstrap script (/etc/patroni/gale-post-bootstrap.sh, mode
# 0755, readable by postgres): run once, on the node that initialises the
# cluster, with a superuser connection string as its only argument. Creates
# Gale's login role and its database. Set the password here, or leave it out
# and run `ALTER ROLE gale PASSWORD '...'` once the cluster is up.
set -eu
GALE_DB_PASSWORD=${GALE_DB_PASSWORD:-CHANGE-ME}
psql -X -v ON_ERROR_STOP=1 -v pw="$GALE_DB_PASSWORD" "$1" <<'SQL'
CREATE ROLE gale LOGIN PASSWORD :'pw';
CREATE DATABASE gale OWNER gale;
SQL
