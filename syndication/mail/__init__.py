"""Mail: build messages (pure MIME assembly, DKIM) and send them (SMTP via aiosmtplib, or a Maildir)."""
