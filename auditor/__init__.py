"""auditor: explain "connection reset by peer" on Linux servers.

Data flows one way: sources -> parsers -> events -> correlate (with rules/) -> findings -> sinks.
"""

__version__ = "0.1.0"
