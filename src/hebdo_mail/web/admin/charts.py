"""The dashboard's charts: SVG drawn on the server by pygal, put in the page as it is, with a
table of the same figures beside each one for screen readers and for exact numbers.

pygal adds a script to every chart (its tooltips' settings); the CSP would refuse it, so it is
taken out, and the chart is a plain picture with a label. Nothing is fetched from elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pygal
from lxml import etree
from markupsafe import Markup
from pygal.style import Style

SVG = "{http://www.w3.org/2000/svg}"
# Colours readable on white and told apart by people with the common colour blindnesses.
COLOURS = {"good": "#1a7f37", "warn": "#9a6700", "bad": "#b3261e", "neutral": "#0b5cad"}
STYLE = Style(
    background="transparent", plot_background="#ffffff", foreground="#1f2933",
    foreground_strong="#1f2933", foreground_subtle="#5a6470", opacity=".9", opacity_hover="1",
    font_family="Arial, Helvetica, sans-serif", label_font_size=15, major_label_font_size=15,
    legend_font_size=16, value_font_size=15, tooltip_font_size=15,
    colors=tuple(COLOURS.values()),
)  # fmt: skip


@dataclass(frozen=True)
class Series:
    name: str
    values: list[int]
    tone: str  # a key of COLOURS


@dataclass(frozen=True)
class Chart:
    """A chart and its text alternative: the same figures as a table."""

    svg: Markup
    label: str
    columns: list[str]  # the table's heading: the x axis's name, then each series
    rows: list[list[str]]


def bar_chart(
    label: str, x_name: str, x_labels: Sequence[str], series: Sequence[Series], *,
    stacked: bool = False,
) -> Chart:  # fmt: skip
    kind = pygal.StackedBar if stacked else pygal.Bar
    style = Style(**{**STYLE.to_dict(), "colors": tuple(COLOURS[s.tone] for s in series)})
    chart = kind(
        style=style, width=540, height=340, explicit_size=False, js=[],
        disable_xml_declaration=True, legend_at_bottom=True, legend_at_bottom_columns=3,
        x_label_rotation=-45 if len(x_labels) > 6 else 0, show_minor_x_labels=False,
        x_labels_major_every=max(1, len(x_labels) // 6), truncate_label=-1,
        print_values=False, margin=8, spacing=6, min_scale=1, max_scale=6,
    )  # fmt: skip
    chart.x_labels = list(x_labels)
    for one in series:
        chart.add(one.name, one.values)
    rows = [[x, *(str(s.values[i]) for s in series)] for i, x in enumerate(x_labels)]
    return Chart(_svg(chart, label), label, [x_name, *(s.name for s in series)], rows)


def _svg(chart: pygal.graph.graph.Graph, label: str) -> Markup:
    tree = chart.render_tree()
    for script in list(tree.iter("script", f"{SVG}script")):
        script.getparent().remove(script)
    for comment in list(tree.iter(etree.Comment)):  # pygal's credits: bytes for nothing
        comment.getparent().remove(comment)
    tree.set("role", "img")
    tree.set("aria-label", label)
    tree.set("focusable", "false")
    text = etree.tostring(tree, encoding="unicode")
    return Markup(text)  # pygal escapes every label and value it draws
