"""`python -m worker.cli`: the `herald` command."""

from worker.cli.main import main

main(prog_name="herald")
