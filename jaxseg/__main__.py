"""``python -m jaxseg VERB ...``: the ``jaxseg`` command (``jaxseg.cli``)."""

import sys

from jaxseg.cli import main

sys.exit(main(sys.argv[1:]))
