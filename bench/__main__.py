"""`python -m bench` (`make bench`): see bench/__init__.py."""

from bench.harness import main

raise SystemExit(main())
