"""Resource limits and kernel counters: sysctls, /proc/net counters, listeners, process limits.

Each reader parses one artifact kind (live or saved) into a frozen record that keeps
the file and line of every value, and reports what it could not understand as
:class:`~auditor.models.ParseIssue` instead of raising. :mod:`.snapshot` puts them
together into a :class:`~auditor.limits.snapshot.HostState` and :mod:`.checks`
names the risks that hold without any log.
"""
