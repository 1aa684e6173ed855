"""One package per study (see README.md here): none imports another."""
