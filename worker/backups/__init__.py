"""Database backups: take (`dump`), prove (`verify`), restore (`restore`), rotate
(`retention`), with every backup recorded in the `backups` table (`store`).

`job.run_backup` is what the nightly `maintenance.backup` task and `herald backup now`
both run: under the deployment-wide "backup" lock, dump, verify, apply retention.
File formats: a plain backup is pg_dump's custom format as is; an encrypted one
(HERALD_BACKUP_ENCRYPTION_KEY) is described in `crypto`.
"""
