"""One analysis across processes, GPUs and nodes on torch.distributed (SPEC 18): :mod:`.workers` (ranks, agreed
errors, collectives), :mod:`.ring` (the tiles' schedule) and :mod:`.merge` (each accumulator's reduce)."""
