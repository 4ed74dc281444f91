"""The one assembly of auditor: inputs -> parsers -> events and host facts -> correlate -> report.

Every command goes through here: ``diagnose`` and the scheduled ``audit`` through
:mod:`auditor.pipeline.diagnosis`, ``parse`` through :mod:`auditor.pipeline.logs`;
rule sets and host facts come from :mod:`auditor.pipeline.evidence`.
"""
