"""Export checks that need the server's local Triton, and the ``wasteml export`` commands.

The export itself (:mod:`wasteml_export`) stands alone; here it meets the serving side:
:mod:`~wasteml_tools.export.triton_embed` runs the encoders through the local Triton,
:mod:`~wasteml_tools.export.parity` compares served with in-process outputs,
:mod:`~wasteml_tools.export.bench` benchmarks both paths, and
:mod:`~wasteml_tools.export.cli` is the ``wasteml export`` sub-app (paths from the settings).
"""
