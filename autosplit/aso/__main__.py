"""``python -m autosplit.aso run|status|... <db>``: the ``autosplit aso`` commands without the root CLI.

The local backend starts agents this way (:func:`autosplit.aso.process.spawn_agent`).
"""

from autosplit.aso.cli import aso

aso.main(prog_name="python -m autosplit.aso")
