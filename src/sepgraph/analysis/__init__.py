"""The analysis (SPEC 2-7, 12-15, 17): :mod:`.features` (streaming extraction), :mod:`.point` (one layer point's
measurement), :mod:`.cka` (the CKA bookkeeping), :mod:`.run` (``analyze``) and :mod:`.dynamics` (the curves
during training)."""
