"""Files on disk: the evidence directory, profiles, trust stores and the scan history.

Uses the core's records and parsers; knows nothing of the network. Submodules are imported
explicitly; this package imports nothing itself.
"""
