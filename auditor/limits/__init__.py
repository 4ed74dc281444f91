"""The host's facts: limits next to their use, counter windows, and typed facts.

The artifacts themselves are read by :mod:`auditor.parsers.host`; here
:mod:`.snapshot` puts what they hold together into one
:class:`~auditor.limits.snapshot.HostState`, :mod:`.limit_table` lists every limit
with its use, and the fact builders of :mod:`.facts` and :mod:`.facts_nginx` state
typed facts (:class:`~auditor.vocabulary.Fact`). Nothing here names a cause: the
catalog does (``rules/*.yaml``, scored on facts alone by :mod:`auditor.correlate.risks`).
"""
