"""The settings' checked copy (checkedsettings.py): read back, it answers as the models do; a
changed file or a damaged copy means the file is checked again."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import BaseModel

from hebdo_mail.checkedsettings import CACHE_NAME, CHECKING_CODE, Checked
from hebdo_mail.config import Settings
from hebdo_mail.errors import ConfigError
from hebdo_mail.workspace import load_workspace

from .helpers import append_settings, replace_in

PACKAGE = Path(__file__).parents[1] / "src" / "hebdo_mail"

# Every kind of value a section holds: a nested list of sections, a table, a duration, a share, a
# colour and a URL that the checks rewrite, an optional section.
EVERYTHING = """
[smtp]
timeout = 12.5

[[smtp.relays]]
url = "smtp://relay-a.example.org:2525"
weight = 2

[[smtp.relays]]
url = "smtp+starttls://mailer@relay-b.example.org"
concurrency = 3
rate = 40

[send]
send_window = "90min"
stop_failed = "15%"

[bounces]
verp = true

[tracking]
clicks = true
ref = "hebdo"

[dkim]
domain = "example.org"
selector = "hebdo2026"
key_file = "dkim/hebdo.pem"

[web]
trusted_proxies = ["10.0.0.0/8"]
"""


def plain(value: object) -> object:
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value.checked_values() if isinstance(value, Checked) else value


def loaded(ws: Path) -> Settings:
    return load_workspace(ws, explicit=True).settings


def test_the_copy_read_back_answers_as_the_models_do(ws: Path) -> None:
    append_settings(ws, EVERYTHING)
    replace_in(ws / "hebdo.toml", 'accent = "#003366"', 'accent = "#3A6"')
    replace_in(ws / "hebdo.toml", '"https://hebdo.example.org"', '"https://hebdo.example.org/"')
    checked = loaded(ws)
    assert isinstance(checked, BaseModel) and (ws / "build" / CACHE_NAME).is_file()
    copy = loaded(ws)
    assert not isinstance(copy, BaseModel)  # read back, not checked again

    assert copy.checked_values() == checked.checked_values()
    for name in Settings.model_fields:
        section, model = getattr(copy, name), getattr(checked, name)
        if model is None:
            assert section is None
            continue
        for field in type(model).model_fields:
            assert plain(getattr(section, field)) == plain(getattr(model, field)), f"{name}.{field}"
    assert [relay.url for relay in copy.smtp.relays] == [r.url for r in checked.smtp.relays]
    assert copy.send.send_window.total_seconds() == 5400 and copy.send.stop_failed == 0.15
    assert copy.style.accent == "#33aa66" and copy.newsletter.base_url.endswith(".org")
    news, model_news = copy.newsletter, checked.newsletter
    for lang in ("fr", "en", "en-GB"):
        assert news.name_in(lang) == model_news.name_in(lang)
        assert news.sender_in(lang) == model_news.sender_in(lang)
    for derived in ("sender_address", "sender_domain", "list_identifier", "unsubscribe_address"):
        assert getattr(news, derived) == getattr(model_news, derived), derived
    assert copy.style.colours() == checked.style.colours()


def test_a_changed_file_or_a_damaged_copy_is_checked_again(ws: Path) -> None:
    assert loaded(ws).send.concurrency == 10
    append_settings(ws, "[send]\nconcurrency = 0\n")
    with pytest.raises(ConfigError) as refused:
        loaded(ws)
    assert "send.concurrency" in str(refused.value) and "hebdo.toml" in str(refused.value)
    replace_in(ws / "hebdo.toml", "concurrency = 0", "concurrency = 4")
    assert loaded(ws).send.concurrency == 4
    assert loaded(ws).send.concurrency == 4  # from the copy now

    copy = ws / "build" / CACHE_NAME
    for damage in (b"", b"{not json", b'{"key": "other", "settings": {}}', b"[1, 2]"):
        copy.write_bytes(damage)
        settings = loaded(ws)
        assert isinstance(settings, BaseModel) and settings.send.concurrency == 4
        assert not isinstance(loaded(ws), BaseModel)  # the copy rewritten whole


def test_a_workspace_where_nothing_can_be_kept_is_checked_each_time(ws: Path) -> None:
    (ws / "build").write_text("not a folder")
    assert isinstance(loaded(ws), BaseModel) and isinstance(loaded(ws), BaseModel)


def test_the_copy_is_keyed_by_every_module_the_checks_run() -> None:
    tree = ast.parse((PACKAGE / "config.py").read_text())
    ours = {
        f"{node.module}.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
    }
    assert ours and ours | {"config.py"} <= set(CHECKING_CODE), ours - set(CHECKING_CODE)
