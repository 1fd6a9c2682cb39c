"""What an analysis leaves on disk (SPEC 12): :mod:`.layer_row` (one point's row, the columns of layers.csv),
:mod:`.folder` (manifest, rows, edges, resume), :mod:`.formats` (older formats) and :mod:`.dynamics_table`
(dynamics.csv, SPEC 17)."""
