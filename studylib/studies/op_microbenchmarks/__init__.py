"""The study of notebook ``03-op-microbenchmarks``."""
