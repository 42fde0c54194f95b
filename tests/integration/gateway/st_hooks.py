"""Schemathesis hooks for the gateway run (loaded with SCHEMATHESIS_HOOKS=st_hooks).

The chat endpoints are included: every generated question is answered by the real model, so the
answer length is capped to keep the run bounded.
"""

from __future__ import annotations

from typing import Any

import schemathesis

MAX_TOKENS = 8


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    if isinstance(body, dict) and ("question" in body or "messages" in body):
        body["max_tokens"] = MAX_TOKENS
    return body
