"""Views of a run: the report page, its charts, the TensorBoard writer and the runs listing.

Everything here only reads run folders (names and files of :mod:`retarget.run.layout`);
it sits between :mod:`retarget.train`, whose ``Views`` hook keeps the report and
TensorBoard up to date during a run, and :mod:`retarget.run`. It imports nothing of the
training package, so ``retarget runs`` lists runs without loading it.
"""
