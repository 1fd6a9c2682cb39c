"""What a person looks at (SPEC 12): :mod:`.figures` (matplotlib figures of a results folder) and :mod:`.html`
(``report.html``, one self-contained page)."""
