"""Mail systems and receiving servers that give a reason in their own words (bounce_systems.txt):
which system wrote a report, recognised by its header fields, and which server refused, by its
name or the recipient's domain; then the reason their own tables give a failure, if any.

A system's own word comes first (Exchange's 000C05A6 is an unknown user, Amazon SES's "mailbox
does not exist" a filter), then the receiving server's, then the general decision
(bounce_reasons.py), as in Sisimai. Pure; the tables are read once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from functools import cache
from importlib.resources import files

from ..vocabulary import BounceReason
from . import mail_parts

CODE = re.compile(r"^[245](?:\d\d|(?:\.[\d\[\]-]+){2})$")
RANGE = re.compile(r"^([245]\.\d+\.)(\d+)-(\d+)$")
CONDITION = re.compile(r'^([\w-]+) (present|is|starts|has|matches)(?: "((?:[^"\\]|\\.)*)")?$')


@dataclass(frozen=True)
class Rule:
    """One line of a table: a reason when the wording, the code or the SMTP command fits."""

    reason: BounceReason
    phrase: re.Pattern[str] | None
    codes: re.Pattern[str] | None
    commands: frozenset[str]

    def holds(self, text: str, status: str, reply: str, command: str) -> bool:
        if self.commands:
            return command in self.commands
        if self.codes is not None and not (
            self.codes.fullmatch(status) or self.codes.fullmatch(reply)
        ):
            return False
        return self.phrase is None or self.phrase.search(text) is not None


@dataclass(frozen=True)
class Condition:
    field: str  # a header field, or "text": the report's own words
    test: str  # present, is, starts, has, matches
    value: str

    def holds(self, fields: dict[str, list[str]], report: str) -> bool:
        values = [report] if self.field == "text" else fields.get(self.field, [])
        if self.test == "present":
            return bool(values)
        return any(self._fits(v) for v in values)

    def _fits(self, value: str) -> bool:
        if self.test == "is":
            return value == self.value
        if self.test == "starts":
            return value.startswith(self.value)
        if self.test == "has":
            return self.value in value
        return re.search(self.value, value) is not None


@dataclass(frozen=True)
class Table:
    """A mail system (recognised by ``when``) or a receiving server (by ``hosts``), with its
    rules in order."""

    name: str
    when: tuple[tuple[Condition, ...], ...]
    hosts: tuple[str, ...]
    rules: tuple[Rule, ...]

    def reason(self, text: str, status: str, reply: str, command: str) -> BounceReason | None:
        """The reason of the first rule that holds for a failure ("" where a value is not
        known); ``text`` in lower case."""
        for rule in self.rules:
            if rule.holds(text, status, reply, command):
                return rule.reason
        return None

    def wrote(self, fields: dict[str, list[str]], report: str) -> bool:
        """Did this system write the report, whose header ``fields`` are given by lower-case
        name?"""
        return any(all(c.holds(fields, report) for c in conditions) for conditions in self.when)

    def serves(self, remote_host: str, domain: str) -> bool:
        return any(
            name in remote_host or (domain and domain in name) for name in self.hosts
        )  # fmt: skip


def system_of(message: Message, report: str) -> Table | None:
    """The mail system that wrote the report, if its table knows it."""
    systems, _ = tables()
    fields: dict[str, list[str]] = {}
    for name, value in message.items():
        text = mail_parts.decoded(value) if "=?" in str(value) else str(value)
        fields.setdefault(name.lower(), []).append(" ".join(text.split()))
    return next((s for s in systems if s.wrote(fields, report)), None)


def host_of(remote_host: str, recipient: str) -> Table | None:
    """The table of the server that refused (its name, or the recipient's domain)."""
    _, hosts = tables()
    domain = recipient.rpartition("@")[2].lower()
    remote = remote_host.lower()
    return next((h for h in hosts if h.serves(remote, domain)), None)


@cache
def tables() -> tuple[tuple[Table, ...], tuple[Table, ...]]:
    """(the mail systems, the receiving servers), in the order of the file."""
    text = files(__package__).joinpath("bounce_systems.txt").read_text(encoding="utf-8")
    sections: list[tuple[str, str, list[str]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        if match := re.fullmatch(r"\[(system|host) (\S+)\]", line.strip()):
            sections.append((match.group(1), match.group(2), []))
        elif not sections:
            raise ValueError(f"bounce_systems.txt, line {number}: a rule before any section")
        else:
            sections[-1][2].append(line)
    built = [(kind, _table(name, lines)) for kind, name, lines in sections]
    return (
        tuple(t for kind, t in built if kind == "system"),
        tuple(t for kind, t in built if kind == "host"),
    )


def _table(name: str, lines: list[str]) -> Table:
    when: list[tuple[Condition, ...]] = []
    hosts: list[str] = []
    rules: list[Rule] = []
    for line in lines:
        if line.startswith("when "):
            when.append(tuple(_condition(c) for c in line[5:].split(" and ")))
        elif line.startswith("host "):
            hosts.append(line[5:].strip().lower())
        else:
            reason, _, rest = line.partition(": ")
            rules.append(_rule(BounceReason(reason.strip()), rest))
    return Table(name, tuple(when), tuple(hosts), tuple(rules))


def _condition(text: str) -> Condition:
    match = CONDITION.match(text.strip())
    if match is None:
        raise ValueError(f"bounce_systems.txt: cannot read the condition {text!r}")
    field, test, value = match.groups()
    return Condition(field.lower(), test, (value or "").replace('\\"', '"'))


def _rule(reason: BounceReason, rest: str) -> Rule:
    if rest.startswith("command "):
        return Rule(reason, None, None, frozenset(rest.split()[1:]))
    codes, bar, phrase = rest.partition(" | ")
    if not bar:
        tokens = rest.split()
        codes, phrase = (rest, "") if tokens and all(CODE.match(t) for t in tokens) else ("", rest)
    pattern = None
    if codes.strip():
        pattern = re.compile("|".join(_code(token) for token in codes.split()))
    words = None
    if phrase:
        words = re.compile(".*?".join(re.escape(p) for p in phrase.lower().split(" … ")), re.S)
    return Rule(reason, words, pattern, frozenset())


def _code(token: str) -> str:
    """A status code (5.7.1), a pattern of one (5.7.6[0-4][0-9]), a range of its last number
    (5.7.606-649) or a reply code (550), as a regular expression."""
    if match := RANGE.match(token):
        head, low, high = match.groups()
        numbers = "|".join(str(n) for n in range(int(low), int(high) + 1))
        return re.escape(head) + f"(?:{numbers})"
    return token.replace(".", r"\.")
