"""The order domain: items, batch references and the event-sourced ``Order``.

Kept import-light on purpose: workflow code imports :mod:`domain.refs` and
:mod:`domain.summary` inside Temporal's sandbox, so nothing heavy is imported here.
Import from the modules themselves (``from domain.items import Item``).
"""
