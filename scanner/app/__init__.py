"""The pipelines that join the layers: the collector (network → evidence directory), the analysis
(evidence directory → verdicts and reports), resume, and ``inspect``.

Everything here returns values and raises ``ParseError`` for bad input; only ``scanner.cli``
prints, picks the event loop and sets exit codes. Submodules are imported explicitly.
"""
