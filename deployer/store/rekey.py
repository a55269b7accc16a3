"""`mcp-fc keys rotate-secrets`: every stored secret re-encrypted under the current MCPFC_SECRET_KEY.

A pass over the deployments, in id order, one row per transaction. A row whose encrypted values the current
key alone opens is done: that is its marker, so a pass that was interrupted (Ctrl-C, a crash, a lost
database) is simply run again and goes on where it stopped, and every row stays readable meanwhile (the
old key stays in MCPFC_OLD_SECRET_KEYS until the pass reports none left). A row written meanwhile by a
deploy or a token rotation keeps what was written (a compare-and-set; lifecycle.reencrypt_secrets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from deployer.crypto import Vault
from deployer.errors import ConfigError
from deployer.store import lifecycle
from deployer.store.tables import DeploymentRow

BATCH = 200


@dataclass
class RekeyReport:
    rotated: int = 0
    current: int = 0
    changed_meanwhile: int = 0
    unreadable: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.unreadable and not self.changed_meanwhile


def rotate_secrets(
    session: Session, vault: Vault, *, on_row: Callable[[str, str], None] | None = None
) -> RekeyReport:
    """Re-encrypt what the current key does not open yet; `on_row(id, outcome)` after each row's commit."""
    report = RekeyReport()
    after = ""
    while True:
        ids = session.scalars(
            select(DeploymentRow.id).where(DeploymentRow.id > after).order_by(DeploymentRow.id).limit(BATCH)
        ).all()
        if not ids:
            return report
        for dep_id in ids:
            outcome = _one(session, vault, dep_id, report)
            session.commit()
            if on_row is not None:
                on_row(dep_id, outcome)
        after = ids[-1]


def _one(session: Session, vault: Vault, dep_id: str, report: RekeyReport) -> str:
    columns = [getattr(DeploymentRow, col) for col in lifecycle.SECRET_COLUMNS]
    found = session.execute(select(*columns).where(DeploymentRow.id == dep_id)).one_or_none()
    if found is None:
        return "gone"
    old = dict(zip(lifecycle.SECRET_COLUMNS, found, strict=True))
    stale = {col: token for col, token in old.items() if token and not vault.is_current(token)}
    if not stale:
        report.current += 1
        return "current"
    try:
        new = {col: vault.rotate(token) for col, token in stale.items()}
    except ConfigError:
        report.unreadable.append(dep_id)
        return "unreadable"
    if lifecycle.reencrypt_secrets(session, dep_id, old, new):
        report.rotated += 1
        return "rotated"
    report.changed_meanwhile += 1
    return "changed meanwhile"
