"""Archival: old post_attempts partitions to export files, finished posts to the archive.

`archiver.run_archive` is the one entry point (`maintenance.archive`, `herald archive`);
`attempts` handles the partitions, `posts` the rows, `export` the files.
"""
