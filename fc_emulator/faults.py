"""Fault injection for the FC API, configured per operation.

An operation is the SDK action name (``CreateFunction``, ``GetFunction`` ...) or ``*`` for every operation.
A rule (all keys optional)::

    {"latency_ms": 100,            # sleep this long before answering (in the request's own thread)
     "error_rate": 0.0,            # probability of answering error_status/error_code instead of running it
     "error_status": 500, "error_code": "InternalServerError", "error_message": "...",
     "throttle_rate": 0.0,         # probability of answering 429 Throttling + x-acs-retry-after: retry_after
     "retry_after": 1,             # x-acs-retry-after header value (positive integer); read as MILLISECONDS
     "lose_response_rate": 0.0,    # probability that the call COMMITS, then the connection closes unanswered
     "seed": 42,                   # seeds this rule's own random generator (reproducible sequences)
     "count": 3}                   # the rule covers only the next N calls of the operation, then lapses

``retry_after`` is sent as the integer of the ``x-acs-retry-after`` header of the 429, which makes the SDK
raise ``ThrottlingException(retry_after=N)``. The SDK's own retry backoff reads it as MILLISECONDS
(``darabonba/core.py`` ``get_backoff_time`` returns it and ``sleep`` waits ``N / 1000`` s), and so does
mcp-fc's gateway (``deployer/fc/gateway.py``); the default ``1`` is therefore a 1 ms hint. Give e.g. ``2000``
for a two-second backoff.

Rule choice: an operation's own rule wins over ``*`` as a whole (keys are not merged); once the operation's
rule has lapsed (``count`` used up) the ``*`` rule applies again. ``count`` is consumed by every call the rule
covers, whether or not a fault fires, so ``{"error_rate": 1.0, "count": 2}`` fails exactly the next two calls.

Per covered call the three random draws are made in a fixed order (throttle, error, lose) so a seeded rule
gives the same sequence whatever the outcome. Throttling wins over an error; both stop the call before it
runs; a lost response happens after the call ran (whatever its outcome).
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .exceptions import FCError, Throttling

WILDCARD = "*"

_FLOAT_KEYS = ("latency_ms", "error_rate", "throttle_rate", "lose_response_rate")
_RATE_KEYS = ("error_rate", "throttle_rate", "lose_response_rate")
RULE_KEYS = frozenset(
    (*_FLOAT_KEYS, "error_status", "error_code", "error_message", "retry_after", "seed", "count")
)


@dataclass
class FaultRule:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    error_code: str = "InternalServerError"
    error_message: str | None = None
    throttle_rate: float = 0.0
    retry_after: int = 1
    lose_response_rate: float = 0.0
    seed: int | None = None
    count: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "rule") -> FaultRule:
        """Build a validated rule; raises ``ValueError`` naming the offending key."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: a fault rule must be a JSON object")
        unknown = sorted(set(data) - RULE_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(RULE_KEYS)}")
        kwargs: dict[str, Any] = {}
        for key in _FLOAT_KEYS:
            if key in data:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{where}.{key} must be a number")
                if value < 0 or (key in _RATE_KEYS and value > 1):
                    raise ValueError(
                        f"{where}.{key} must be in [0, 1]"
                        if key in _RATE_KEYS
                        else f"{where}.{key} must be >= 0"
                    )
                kwargs[key] = float(value)
        for key, low, high in (("error_status", 400, 599), ("retry_after", 1, 86400), ("count", 0, 2**31)):
            if key in data and data[key] is not None:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                    raise ValueError(f"{where}.{key} must be an integer in [{low}, {high}]")
                kwargs[key] = value
        for key in ("error_code", "error_message"):
            if key in data and data[key] is not None:
                if not isinstance(data[key], str) or not data[key]:
                    raise ValueError(f"{where}.{key} must be a non-empty string")
                kwargs[key] = data[key]
        if data.get("seed") is not None:
            if isinstance(data["seed"], bool) or not isinstance(data["seed"], int):
                raise ValueError(f"{where}.seed must be an integer")
            kwargs["seed"] = data["seed"]
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "error_status": self.error_status,
            "error_code": self.error_code,
            "throttle_rate": self.throttle_rate,
            "retry_after": self.retry_after,
            "lose_response_rate": self.lose_response_rate,
            "seed": self.seed,
            "count": self.count,
        }
        if self.error_message is not None:
            out["error_message"] = self.error_message
        return out

    @property
    def active(self) -> bool:
        return self.count is None or self.count > 0


@dataclass(frozen=True)
class FaultPlan:
    """What to do to one call, decided before it runs."""

    operation: str
    latency_s: float = 0.0
    #: An error to answer instead of running the call (throttling or injected error).
    error: FCError | None = None
    #: Run the call, then close the connection without answering.
    lose_response: bool = False

    @property
    def is_noop(self) -> bool:
        return not self.latency_s and self.error is None and not self.lose_response


class FaultInjector:
    """Thread-safe per-operation fault configuration plus call and fault counters.

    The injector only decides (:meth:`plan`); the server sleeps, fails or drops the connection in the
    request's own thread, never while holding the backend lock.
    """

    def __init__(self, operations: Iterable[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._operations = frozenset(operations) if operations is not None else None
        self._rules: dict[str, FaultRule] = {}
        self._calls: dict[str, int] = defaultdict(int)
        self._faults: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    # configuration ---------------------------------------------------------------------------------
    def _parse(self, config: Mapping[str, Any]) -> dict[str, FaultRule]:
        if not isinstance(config, Mapping):
            raise ValueError("the fault configuration must be a JSON object keyed by operation name")
        rules = {}
        for op, rule in config.items():
            if op != WILDCARD and self._operations is not None and op not in self._operations:
                raise ValueError(
                    f"unknown operation '{op}'; valid operations are {sorted(self._operations)} or '*'"
                )
            rules[op] = FaultRule.from_dict(rule, where=op)
        return rules

    def configure(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the whole configuration (validated first: on error nothing changes)."""
        rules = self._parse(config)
        with self._lock:
            self._rules = rules
        return self.get_config()

    def update(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the rules of the operations named in ``config``; keep the others."""
        rules = self._parse(config)
        with self._lock:
            self._rules.update(rules)
        return self.get_config()

    def set(self, operation: str, **rule: Any) -> dict[str, Any]:
        """Convenience: ``faults.set("CreateFunction", error_rate=1.0, count=1)``."""
        return self.update({operation: rule})

    def clear(self) -> None:
        with self._lock:
            self._rules = {}

    def get_config(self) -> dict[str, Any]:
        with self._lock:
            return {op: rule.to_dict() for op, rule in self._rules.items()}

    # counters -----------------------------------------------------------------------------------------
    def record_call(self, operation: str) -> None:
        with self._lock:
            self._calls[operation] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            calls = dict(self._calls)
            faults = {op: dict(kinds) for op, kinds in self._faults.items()}
        return {
            "calls": calls,
            "faults": faults,
            "total_calls": sum(calls.values()),
            "total_faults": sum(n for kinds in faults.values() for n in kinds.values()),
        }

    def reset_stats(self) -> None:
        with self._lock:
            self._calls.clear()
            self._faults.clear()

    def reset(self) -> None:
        """Clear rules and counters."""
        with self._lock:
            self._rules = {}
            self._calls.clear()
            self._faults.clear()

    # decisions ----------------------------------------------------------------------------------------
    def _rule_for(self, operation: str) -> FaultRule | None:
        for key in (operation, WILDCARD):
            rule = self._rules.get(key)
            if rule is not None and rule.active:
                return rule
        return None

    def plan(self, operation: str) -> FaultPlan:
        """Decide the faults of one call of ``operation`` (consumes ``count`` and random draws)."""
        with self._lock:
            rule = self._rule_for(operation)
            if rule is None:
                return FaultPlan(operation)
            if rule.count is not None:
                rule.count -= 1
            throttle = rule._rng.random() < rule.throttle_rate
            error = rule._rng.random() < rule.error_rate
            lose = rule._rng.random() < rule.lose_response_rate
            counters = self._faults[operation]
            latency_s = rule.latency_ms / 1000.0
            if latency_s:
                counters["latency"] += 1
            exc: FCError | None = None
            if throttle:
                counters["throttle"] += 1
                exc = Throttling(rule.retry_after)
            elif error:
                counters["error"] += 1
                exc = FCError(
                    rule.error_message or f"injected fault: {rule.error_code}",
                    status=rule.error_status,
                    code=rule.error_code,
                )
            if lose and exc is None:
                counters["lose_response"] += 1
            else:
                lose = False
            return FaultPlan(operation, latency_s=latency_s, error=exc, lose_response=lose)
