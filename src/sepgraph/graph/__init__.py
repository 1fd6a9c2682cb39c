"""Pure maths on arrays (SPEC 3-7, 13-15): no files, no ranks. :mod:`.rows` (unit rows), :mod:`.tiles` (the
tile plan), :mod:`.accumulators` (what tiles fold into, each with its cross-rank ``reduce``), :mod:`.scan` (one
scan per layer point), :mod:`.modularity` (M, Newman Q, Lu et al.'s Q) and :mod:`.peers` (k-NN, probe, CKA)."""
