"""Digests: choose what each subscriber receives (pure) and render it (Jinja2, css-inline)."""
