"""``python -m tfkd.cli``: the ``tfkd`` command."""

from tfkd.cli import main

main()
