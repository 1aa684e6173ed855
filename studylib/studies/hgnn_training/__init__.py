"""The study of notebook ``01-hgnn-training``."""
