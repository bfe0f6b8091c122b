"""``python -m autosplit.pipeline.aso run|status|... <db>``: the ``autosplit aso`` commands without the root CLI.

The local backend starts agents this way (:func:`autosplit.pipeline.aso.process.spawn_agent`).
"""

from autosplit.cli.aso_cmd import aso

aso.main(prog_name="python -m autosplit.pipeline.aso")
