#!/usr/bin/env bash
# Kartoteka's nightly logical backup (docs/deploy.md, "Backups"): pg_dump in the
# custom format (-Fc: compressed, restorable table by table with pg_restore),
# read back with pg_restore --list before it counts as a backup, and kept for
# BACKUP_KEEP_DAYS days. Prints the new file's path.
#
# Run as a user that may read the whole database (the postgres user on the
# database host, kartoteka-backup.service); libpq's variables say where:
#   PGDATABASE (default kartoteka), PGHOST, PGPORT, PGUSER, PGPASSFILE.
#   BACKUP_DIR (default /var/backups/kartoteka), BACKUP_KEEP_DAYS (default 14).
set -euo pipefail
dir=${BACKUP_DIR:-/var/backups/kartoteka}
keep=${BACKUP_KEEP_DAYS:-14}
db=${PGDATABASE:-kartoteka}
umask 077  # the dump holds every customer's personal data
mkdir -p "$dir"
file="$dir/$db-$(date -u +%Y%m%dT%H%M%SZ).dump"
pg_dump --format=custom --compress=6 --file="$file.partial" --dbname="$db"
pg_restore --list "$file.partial" >/dev/null
mv "$file.partial" "$file"
# Retention: older dumps go (RODO: erased customers must not live on in backups
# longer than the documented period).
find "$dir" -maxdepth 1 -name "$db-*.dump" -mtime +"$keep" -delete
echo "$file"
