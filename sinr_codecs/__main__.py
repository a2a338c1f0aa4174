"""``python -m sinr_codecs``: the ``sinr`` command (:func:`sinr_codecs.cli.main`)."""

import sys

from sinr_codecs.cli import main

if __name__ == "__main__":
    sys.exit(main())
