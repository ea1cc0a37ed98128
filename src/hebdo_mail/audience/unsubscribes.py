"""``hebdo-mail unsubscribes process MAILDIR``: the mailto: half of List-Unsubscribe.

Each message in the Maildir's new/ and cur/ is read; a subject (or first body line) holding a
genuine unsubscribe token unsubscribes that address; handled messages are marked seen (moved to
cur/ with the S flag). A message without a valid token is reported and left untouched, so an
admin can deal with it by hand. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import display_path
from ..workspace import Workspace, load_secret
from .maildir import maildir_messages, mark_seen
from .store import open_store
from .tokens import TOKEN_PATTERN, TokenSigner


@dataclass
class UnsubscribeReport:
    unsubscribed: int = 0
    already: int = 0
    problems: list[str] = field(default_factory=list)


def process_unsubscribes(workspace: Workspace, folder: Path) -> UnsubscribeReport:
    secret, _ = load_secret(workspace.root, create=False)
    signer = TokenSigner(secret, workspace.settings.newsletter.list_identifier)
    report = UnsubscribeReport()
    with open_store(workspace) as store:
        for path in maildir_messages(folder):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            body = message.get_body(preferencelist=("plain",))
            first_lines = body.get_content()[:2000] if body is not None else ""
            candidates = TOKEN_PATTERN.findall(f"{message.get('Subject', '')}\n{first_lines}")
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
