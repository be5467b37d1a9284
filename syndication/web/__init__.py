"""Web: the ASGI app that serves feeds and pages for people (Starlette).

It never builds a feed on a request: it asks a ``FeedProvider`` (wired in ``core``)
for documents that were built when articles changed.
"""
