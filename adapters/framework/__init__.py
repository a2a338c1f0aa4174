"""The framework an adapter is built from (filled in below)."""
