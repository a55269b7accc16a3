"""Small pieces of FC's wire format that every resource shares: timestamps and list pagination.

FC writes times as ``2024-01-02T03:04:05Z`` (UTC, whole seconds). List actions take ``limit`` (1 to 100,
default 20) and answer a ``nextToken`` when more items follow. Functions and triggers encode the next
item's name as that token (:func:`paginate`); versions and aliases use the next item's id or name as it is
(:func:`page_by_key`).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .exceptions import InvalidArgument
from .validation import DEFAULT_LIST_LIMIT

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

T = TypeVar("T")


def iso(ts: float) -> str:
    return time.strftime(ISO_FORMAT, time.gmtime(ts))


def parse_limit(limit: Any) -> int:
    if limit is None or limit == "":
        return DEFAULT_LIST_LIMIT
    try:
        value = int(limit)
    except (TypeError, ValueError):
        raise InvalidArgument(f"limit must be an integer in [1, 100], got {limit!r}") from None
    if not 1 <= value <= 100:
        raise InvalidArgument(f"limit must be an integer in [1, 100], got {value}")
    return value


def encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii").rstrip("=")


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument(f"nextToken {token!r} is invalid") from None


def paginate(
    names: list[str], prefix: str | None, limit: Any, next_token: str | None
) -> tuple[list[str], str | None]:
    """One page of ``names`` (sorted, filtered by ``prefix``) and the token of the next page, if any."""
    size = parse_limit(limit)
    selected = sorted(n for n in names if not prefix or n.startswith(prefix))
    if next_token:
        start = decode_token(next_token)
        selected = [n for n in selected if n >= start]
    page, rest = selected[:size], selected[size:]
    return page, (encode_token(rest[0]) if rest else None)


def page_by_key(
    items: list[T], key: Callable[[T], str], limit: Any, next_token: str | None
) -> tuple[list[T], str | None]:
    """One page of ``items`` (in their order) starting at the item whose ``key`` is ``next_token``."""
    size = parse_limit(limit)
    if next_token:
        keys = [key(i) for i in items]
        if next_token not in keys:
            raise InvalidArgument(f"nextToken {next_token!r} is invalid")
        items = items[keys.index(next_token) :]
    page, rest = items[:size], items[size:]
    return page, (key(rest[0]) if rest else None)


__all__ = ["ISO_FORMAT", "decode_token", "encode_token", "iso", "page_by_key", "paginate", "parse_limit"]
