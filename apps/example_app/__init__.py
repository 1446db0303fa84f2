"""A realistic demo app: an online shop's housekeeping, declared in hooks.py with every section."""
