"""Where to cut and what cutting does (SPEC 8, 9, 16): :mod:`.criterion` (Criterion I and the curve registry),
:mod:`.candidates` (the cuts a comparison trains), :mod:`.rows` (training them beside the control) and
:mod:`.table` (``PruningRow``, ``pruning.csv``, Markdown)."""
