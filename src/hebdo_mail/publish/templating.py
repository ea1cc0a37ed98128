"""The Jinja2 environment shared by every stage that renders: email, web pages and the archive.

Templates come from the workspace's ``templates/`` first (to override any template by name), then
from the package's own. ``StrictUndefined`` turns a misspelt variable into an error; HTML templates
are autoescaped; fixed strings go through gettext in the edition's language.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from ..config import StyleSettings
from ..errors import HebdoError, TemplateError
from ..workspace import Workspace, package_templates_dir
from . import i18n
from .plaintext import WIDTH, underline, wrap


def _wrap_filter(text: str, width: int = WIDTH, indent: str = "", first: str | None = None) -> str:
    """``text`` wrapped at ``width`` columns, each line after ``indent``, the first after
    ``first`` when given (a list item: ``wrap(first="* ", indent="  ")``)."""
    return "\n".join(wrap(str(text), width, first=indent if first is None else first, rest=indent))


def workspace_environment(workspace: Workspace, lang: str) -> jinja2.Environment:
    """The environment of a workspace: its template overrides, catalogues and [style]."""
    env = environment(workspace.templates_dir, workspace.locale_dir, lang)
    style = workspace.settings.style
    env.globals["style"] = {**style.colours(), "footer_address": style.footer_address or ""}
    return env


def environment(
    templates_dir: Path | None, locale_dir: Path | None, lang: str
) -> jinja2.Environment:
    # Built afresh for each render: Jinja's cache would not notice an override added later.
    folders = [d for d in (templates_dir, package_templates_dir()) if d is not None]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in folders]),
        autoescape=jinja2.select_autoescape(["html", "htm", "xml"], default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(i18n.translations(lang, locale_dir), newstyle=True)  # type: ignore[attr-defined]
    env.filters["underline"] = lambda text, char="=": f"{text}\n{underline(str(text), char)}"
    env.filters["wrap"] = _wrap_filter
    env.filters["filesize"] = lambda size: i18n.format_size(int(size), lang)
    env.filters["date"] = lambda value, pattern="long": i18n.format_date(value, lang, pattern)
    env.filters["language_name"] = i18n.language_name
    env.globals["style"] = {**StyleSettings().colours(), "footer_address": ""}
    return env


def render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render a template; any failure becomes one line naming the template file and line."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error: {exc.message}", path=exc.filename or name, line=exc.lineno
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(
            f"template {exc.name!r} not found; restore it or remove the reference", path=name
        ) from None
    except (jinja2.UndefinedError, HebdoError, TypeError, ValueError, AttributeError) as exc:
        path, line = _template_frame(exc)
        message = exc.message if isinstance(exc, HebdoError) else str(exc)
        if isinstance(exc, jinja2.UndefinedError):
            message = f"unknown template variable: {message}; check its spelling or remove it"
        raise TemplateError(message, path=path or name, line=line) from None


def _template_frame(exc: BaseException) -> tuple[str | None, int | None]:
    """Jinja rewrites tracebacks so template frames carry the template's file and line."""
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if not frame.filename.endswith(".py"):
            found = (frame.filename, frame.lineno)
    return found
