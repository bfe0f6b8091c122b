"""``python -m autosplit`` runs the command line."""

from autosplit.cli import main

main()
