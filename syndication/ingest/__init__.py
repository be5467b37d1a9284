"""Ingest: fetch sources over HTTP (or file:), parse feeds and portal pages into ``ArticleData``.

Modules: ``fetch`` (httpx, the only network edge), ``local_files`` (``file:`` URLs),
``netguard`` (which addresses and files we refuse),
``normalize`` (pure text/HTML/date rules), ``parse_feed`` (RSS/Atom via feedparser, JSON Feed),
``xml_safety`` (what feedparser may see: no entity declaration, ever),
``parse_html`` (portal pages, rules as data), ``decide`` (pure: when to poll next).
"""
