"""``hebdo-mail unsubscribes process MAILDIR``: the mailto: half of List-Unsubscribe.

Each message in the Maildir's new/ and cur/ is read; a subject (or first body line) holding a
genuine unsubscribe token unsubscribes that address; handled messages are marked seen (moved to
cur/ with the S flag). A message without a valid token is reported and left untouched, so an
admin can deal with it by hand. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HebdoError, display_path
from ..workspace import Workspace, load_secret
from .store import SubscriberStore
from .tokens import TokenSigner

TOKEN = re.compile(r"\b([A-Za-z0-9_-]{2,400}\.[A-Za-z0-9_-]{43})\b")


@dataclass
class UnsubscribeReport:
    unsubscribed: int = 0
    already: int = 0
    problems: list[str] = field(default_factory=list)


def maildir_messages(folder: Path, *, include_seen: bool = False) -> list[Path]:
    """Messages not yet handled: everything in new/, and what in cur/ is not marked seen."""
    if not (folder / "new").is_dir() and not (folder / "cur").is_dir():
        raise HebdoError(
            "is not a Maildir (no new/ or cur/ folder in it); give a Maildir folder or an mbox file",
            path=folder,
        )
    return sorted(
        p
        for sub in ("new", "cur")
        for p in (folder / sub).glob("*")
        if p.is_file() and (include_seen or "S" not in p.name.partition(":2,")[2])
    )


def mark_seen(path: Path) -> None:
    """Maildir's way to say "handled": in cur/, with the S (seen) flag in the name."""
    base, _, flags = path.name.partition(":2,")
    if path.parent.name == "cur" and "S" in flags:
        return
    new_flags = "".join(sorted(set(flags) | {"S"}))
    path.rename(path.parent.parent / "cur" / f"{base}:2,{new_flags}")


def process_unsubscribes(workspace: Workspace, folder: Path) -> UnsubscribeReport:
    secret, _ = load_secret(workspace.root, create=False)
    signer = TokenSigner(secret, workspace.settings.newsletter.list_identifier)
    report = UnsubscribeReport()
    with SubscriberStore(workspace.store_path) as store:
        for path in maildir_messages(folder):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            body = message.get_body(preferencelist=("plain",))
            first_lines = body.get_content()[:2000] if body is not None else ""
            candidates = TOKEN.findall(f"{message.get('Subject', '')}\n{first_lines}")
            address = next((a for t in candidates if (a := signer.verify(t))), None)
            if address is None:
                report.problems.append(
                    f"{display_path(path)}: no valid unsubscribe token; left as it is"
                )
                continue
            before = store.get(address)
            store.mark_unsubscribed(address, source="mailto")
            if before is not None and before.status == "unsubscribed":
                report.already += 1
            else:
                report.unsubscribed += 1
            mark_seen(path)
    return report
