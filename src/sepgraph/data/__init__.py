"""The data an analysis reads (SPEC 2): datasets by spec string (:mod:`.sources`), the image set and its
normalisation (:mod:`.dataset`), and which samples an analysis uses (:mod:`.samples`)."""
