"""`python -m wsproxy`: the same as the `wsproxy` command."""

import sys

from wsproxy.cli import main

sys.exit(main())
