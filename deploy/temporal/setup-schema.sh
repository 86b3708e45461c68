#!/bin/sh
# Temporal's two PostgreSQL databases, created and brought to the schema of this
# admin-tools release. The `temporal-schema` service of docker-compose.yml runs it on every
# `up`, before the server of the same release starts, so an upgrade updates the schema
# first. Each step is idempotent: create-database keeps an existing database, setup-schema
# leaves a versioned one alone, update-schema applies only the versions it lacks.
#
# The connection comes from the same variables the server reads (DB, DB_PORT,
# POSTGRES_SEEDS, POSTGRES_USER, POSTGRES_PWD); the password goes to temporal-sql-tool
# through its SQL_PASSWORD variable, so it never shows in a process list.
set -eu

: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${POSTGRES_PWD:?}"
SQL_PASSWORD=$POSTGRES_PWD
export SQL_PASSWORD
schemas=${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}

sql_tool() {
    temporal-sql-tool --plugin "${DB:-postgres12}" --ep "$POSTGRES_SEEDS" \
        -p "${DB_PORT:-5432}" -u "$POSTGRES_USER" "$@"
}

setup_database() {
    sql_tool --db "$1" create-database
    sql_tool --db "$1" setup-schema -v 0.0
    sql_tool --db "$1" update-schema -d "$schemas/$2/versioned"
    echo "$1: schema up to date"
}

setup_database "${DBNAME:-temporal}" temporal
setup_database "${VISIBILITY_DBNAME:-temporal_visibility}" visibility
