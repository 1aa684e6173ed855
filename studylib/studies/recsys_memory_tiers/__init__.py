"""The study of notebook ``04-recsys-memory-tiers``."""
