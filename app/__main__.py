"""``python -m app`` is the ``cdc`` command."""

from app.cli import main

main()
