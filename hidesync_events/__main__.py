"""``python -m hidesync_events``: the ``hidesync-events`` command."""

from hidesync_events.cli import main

main(prog_name="hidesync-events")
