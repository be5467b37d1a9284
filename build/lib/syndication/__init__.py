"""syndication: pulls a news portal's articles, publishes them as feeds, sends them as email digests."""

__version__ = "0.1.0"
