"""The order domain: items, batch references and the event-sourced ``Order``.

Kept import-light on purpose: workflow code imports :mod:`bulkorder.domain.refs` and
:mod:`bulkorder.domain.summary` inside Temporal's sandbox, so nothing heavy is imported here.
Import from the modules themselves (``from bulkorder.domain.items import Item``).
"""
