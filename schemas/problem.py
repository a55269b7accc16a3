"""The error document's item: one broken rule of a rejected request (RFC 9457 `errors`, our extension).

One type for both ends: the API documents `ProblemDetail.errors` with it (pydantic takes a dataclass as a
model) and the client parses a 422 into it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ConfigDict


@dataclass(frozen=True)
class FieldError:
    """Where (a dotted field path, or a header name), which rule (the pydantic error type, or one of ours
    such as `memory_range`), and the explanation. Never the offending input: it may be a secret."""

    # Its own config: inside ProblemDetail (extra="allow") it would otherwise inherit that one.
    __pydantic_config__ = ConfigDict(extra="ignore")

    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        rule = f" ({self.rule})" if self.rule else ""
        return f"{where}{self.message}{rule}"
