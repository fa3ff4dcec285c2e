"""Coverage-guided fuzzing with hypothesis: every decoder that reads outside input.

``make test`` runs each target briefly (the ``ci`` profile); ``make fuzz`` runs them for
minutes (``BULKORDER_FUZZ=1``: the ``fuzz`` profile, ``BULKORDER_FUZZ_EXAMPLES`` examples
per target). hypothesis keeps every failing input in ``.hypothesis/`` and replays it first;
each crash found becomes a plain regression test beside its target. Findings and execution
counts are recorded in docs/security.md.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("BULKORDER_FUZZ_EXAMPLES", "20000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile("fuzz" if os.environ.get("BULKORDER_FUZZ") else "ci")
