"""`python -m worker.cli`: the `herald` command."""

from worker.cli.root import main

main(prog_name="herald")
