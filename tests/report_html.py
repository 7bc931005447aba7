"""Read a rendered report.html back into structure the tests can assert on (stdlib parser)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Page:
    tags: list[str] = field(default_factory=list)
    attrs: list[tuple[str, str]] = field(default_factory=list)
    tables: dict[str, list[list[tuple[str, str]]]] = field(default_factory=dict)  # class -> rows of (cell class, text)
    svgs: list[str] = field(default_factory=list)  # aria-labels
    text: str = ""


class _Reader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._table: str | None = None
        self._row: list[tuple[str, str]] | None = None
        self._cell: tuple[str, list[str]] | None = None
        self._text: list[str] = []

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

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append((self._cell[0], "".join(self._cell[1]).strip()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.page.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self._text.append(data)
        if self._cell is not None:
            self._cell[1].append(data)

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
