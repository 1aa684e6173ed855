"""The study of notebook ``02-distributed-caching``."""
