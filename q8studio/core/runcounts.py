"""How many runs a timing takes when nobody says: the one place the command line, the core's functions
and keep-slow-float read them from (the window takes fewer, see ``q8studio.gui.runs``).

Constants only, importing nothing: the command line reads them while it parses, before numpy loads.
"""

LATENCY_RUNS = 50
"""Alternating batch-1 runs of each model for a median latency. At 50, the demo timed against itself
stays within about 8% at the default threads (``benchmarks/latency_stability.py``)."""
PROFILE_RUNS = 100
"""Profiled runs of each model; the slowest fifth is dropped and the rest averaged kernel by kernel
(``kernelprofile.KEPT_RUNS``). keep-slow-float profiles every candidate it tries with as many."""
