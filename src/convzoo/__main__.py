"""`python -m convzoo` is the `convzoo` command."""
from .cli import main

raise SystemExit(main())
