"""Ingest: fetch sources over HTTP (or file:), parse feeds and portal pages into ``ArticleData``.

Modules: ``fetch`` (httpx, the only network edge), ``netguard`` (which addresses we refuse),
``normalize`` (pure text/HTML/date rules), ``parse_feed`` (RSS/Atom via feedparser, JSON Feed),
``parse_html`` (portal pages, rules as data), ``decide`` (pure: when to poll next).
"""
