"""One concern per module; deploy.py composes them. Each exposes apply()."""
