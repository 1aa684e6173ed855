"""The study of notebook ``05-parallelism-analysis``."""
