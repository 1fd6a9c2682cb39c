"""Training and measuring accuracy (SPEC 10): :mod:`.recipe`, :mod:`.loop` (``train``, resumable exactly),
:mod:`.augmentation` and :mod:`.evaluation`."""
