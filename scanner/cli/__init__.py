"""The command line: ``main`` dispatches to one module per command (inspect, collect, scan, diff,
lab, demo), which share exitcodes, timeparse, runner, progress and output. The only layer that
prints, picks the event loop and touches process-wide state. Submodules are imported explicitly."""
