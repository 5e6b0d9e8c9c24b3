"""PostgreSQL: engine and pool, models, migrations, and the repositories (one writer per table)."""
