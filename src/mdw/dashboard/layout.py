"""The page frame shared by every dashboard page: head, navigation and the admin-key indicator.

Pages are plain server-rendered HTML. Everything dynamic is fetched by small ES modules from the
public API, so the HTML here carries no data a page could not also get from ``/v1``.
"""

from __future__ import annotations

from html import escape

# (path, label) in navigation order; the path is also the page's identity.
PAGES: tuple[tuple[str, str], ...] = (
    ("/", "Overview"),
    ("/coverage", "Coverage"),
    ("/universes", "Universes"),
    ("/runs", "Runs"),
    ("/chart", "Symbol chart"),
    ("/admin", "Admin"),
)


def page(title: str, path: str, body: str, *, script: str | None = None) -> str:
    """A complete HTML document.

    Args:
        title: the page's own title (the site name is appended).
        path: which navigation entry is current.
        body: trusted HTML for ``<main>``; callers escape any data they put in it.
        script: a module under ``/static`` that makes the page live, if any.
    """
    current = ' aria-current="page"'
    links = "".join(
        f'<li><a href="{href}"{current if href == path else ""}>{label}</a></li>' for href, label in PAGES
    )
    module = f'<script type="module" src="/static/{escape(script)}"></script>' if script else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · mdw</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/mdw.css">
<script type="module" src="/static/mdw.js"></script>
{module}
</head>
<body>
<header class="top">
<a class="brand" href="/">mdw</a>
<nav aria-label="Dashboard"><ul>{links}</ul></nav>
<span class="keystate" id="keystate" aria-live="polite"></span>
</header>
<main id="main" data-page="{escape(path)}">
{body}
</main>
</body>
</html>
"""


NOSCRIPT = (
    '<noscript><p class="notice">This page needs JavaScript. The <a href="/">overview</a> works '
    "without it, and every number here comes from the public API under <a href=\"/docs\">/docs</a>."
    "</p></noscript>"
)
