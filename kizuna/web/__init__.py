"""The web console: server-rendered, bilingual (English / 日本語) pages under ``/console/``.

A room at the level of detect, federation and formats: it reads only through the node's services
(``Node.viewer_for`` / ``Node.read`` and the core services built on them), so every page sees exactly
what the signed-in token would receive over TAXII. ``docs/web.md`` explains how a page is built.
"""
