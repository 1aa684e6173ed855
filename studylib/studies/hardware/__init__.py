"""The study of notebook ``00-hardware``."""
