"""The simulated workshop day behind ``scripts/record_workshop_day.py``.

The package holds the fixed facts of the workshop (``workshop``), the day's clock and
event stamps (``clock``), the people and tasks that make events (``tool_usage``,
``template_work``, ``record_keeping``, ``execution``) and the day that draws them all
from one seeded random generator and writes them out (``day``). The modules are split
by concept only: together they draw random numbers in exactly the order the single
script did, so a seed still gives the same bytes.
"""
