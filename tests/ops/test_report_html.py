"""The shift report's HTML page: the Markdown's structure, escaped text, and one SVG bar per hour."""

from __future__ import annotations

from html.parser import HTMLParser

from kizuna.ops.report_html import to_html

MARKDOWN = """# Shift report: Games

Since: 2027-07-23T00:00:00Z

## Alerts on protected assets

- lookalike: games2027.example ← indicator <script>alert(1)</script> (JPCERT/CC)

## Activity per hour

```
2027-07-23T01:00Z ### 3
```
"""


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)


def test_the_page_keeps_the_sections_escapes_text_and_draws_a_bar_per_hour() -> None:
    page = to_html(MARKDOWN, {"2027-07-23T01": 3, "2027-07-23T02": 6}, "en")
    tags = Tags()
    tags.feed(page)
    assert tags.seen.count("h2") == 2 and tags.seen.count("li") == 1 and tags.seen.count("rect") == 2
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "### 3" not in page  # the text chart is replaced by the SVG
    assert '<html lang="en">' in page and "<title>Shift report: Games</title>" in page
