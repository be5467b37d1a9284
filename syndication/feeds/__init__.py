"""Feeds: render articles as RSS 2.0, Atom 1.0 and JSON Feed 1.1 documents, and OPML.

Pure: articles in, bytes out. No store, no clock (times come in the ``FeedPage``),
no network. ``render`` builds one page of one feed; the web app and the static
export send exactly those bytes.
"""
