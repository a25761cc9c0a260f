"""The command line: ``main`` dispatches to one module per command. The only layer that prints,
picks the event loop and touches process-wide state. Submodules are imported explicitly."""
