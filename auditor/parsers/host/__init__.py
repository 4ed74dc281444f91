"""Parsers of host artifacts: sysctl, netstat/snmp, sockstat, ``ss`` listeners, process
limits and ``conntrack -S`` statistics.

They turn an artifact's text into typed values with the location of each (counters,
tunables, listeners, processes); the fact builders of :mod:`auditor.limits.facts` read
those, never the text. They are not log parsers: this package defines no
:class:`~auditor.parsers.base.LineParser`, so the log registry finds none here.
"""
