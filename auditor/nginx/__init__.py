"""nginx configuration: a pyparsing grammar, include/``nginx -T`` loading and a typed model.

Entry points live in :mod:`auditor.nginx.config` (``load``, ``parse_text``) and
:mod:`auditor.nginx.logformat` (``compile_format`` for access log lines).
"""
