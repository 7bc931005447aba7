"""Read a rendered report.html back into structure the tests can assert on (stdlib parser)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from harness.reports.html import DEGRADED, FALLBACK


@dataclass
class Page:
    tags: list[str] = field(default_factory=list)
    attrs: list[tuple[str, str]] = field(default_factory=list)
    tables: dict[str, list[list[tuple[str, str]]]] = field(default_factory=dict)  # class -> rows of (cell class, text)
    svgs: list[str] = field(default_factory=list)  # aria-labels
    sections: list[str] = field(default_factory=list)  # ids of the case sections, in page order
    notes: dict[str, list[str]] = field(default_factory=dict)  # DEGRADED / FALLBACK -> texts of those notes
    text: str = ""


class _Reader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._table: str | None = None
        self._row: list[tuple[str, str]] | None = None
        self._cell: tuple[str, list[str]] | None = None
        self._text: list[str] = []
        self._note: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.page.tags.append(tag)
        self.page.attrs.extend((k, v or "") for k, v in attrs)
        if tag == "table":
            self._table = a.get("class", "")
            self.page.tables.setdefault(self._table, [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = (a.get("class", ""), [])
        elif tag == "svg":
            self.page.svgs.append(a.get("aria-label", ""))
        elif tag == "section" and "case" in (a.get("class") or "").split():
            self.page.sections.append(a.get("id") or "")
        flag = next((c for c in (a.get("class") or "").split() if c in (DEGRADED, FALLBACK)), None)
        if tag == "p" and flag:
            self._note = (flag, [])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append((self._cell[0], "".join(self._cell[1]).strip()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.page.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "p" and self._note is not None:
            self.page.notes.setdefault(self._note[0], []).append("".join(self._note[1]).strip())
            self._note = None

    def handle_data(self, data):
        self._text.append(data)
        if self._cell is not None:
            self._cell[1].append(data)
        if self._note is not None:
            self._note[1].append(data)

    def close(self):
        super().close()
        self.page.text = "".join(self._text)


def read_page(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.page


URL = re.compile(r"\b(?:https?|ftp|wss?):|//[a-z0-9.-]+\.[a-z]{2,}/", re.I)


def external_references(html: str, page: Page) -> list[str]:
    """Anything the page could fetch: URLs anywhere, and src/href/url() that leave the file."""
    found = [m.group(0) for m in URL.finditer(html)]
    found += [f"{k}={v}" for k, v in page.attrs if k in ("src", "href", "srcset", "xlink:href")
              and not v.startswith("#")]
    found += re.findall(r"url\([^)]*\)|@import", html)
    found += [t for t in page.tags if t in ("script", "link", "img", "iframe", "object", "embed")]
    return found


def assert_full_page(run_dir: Path) -> Page:
    """The run's report.html is the full page: not the page-level fallback, no part of any case
    (or of the page) degraded to a one-line note, and one section for each case in report.json."""
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    page = read_page(html)
    assert page.notes.get(FALLBACK, []) == [], page.notes[FALLBACK]
    assert page.notes.get(DEGRADED, []) == [], page.notes[DEGRADED]
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    ids = sorted(c["id"] for c in report["cases"])
    assert sorted(page.sections) == ids, (f"report.html has {len(page.sections)} case sections, report.json "
                                          f"{len(ids)} cases; {re.findall(r'[^>]*could not be rendered[^<]*', html)}")
    return page
