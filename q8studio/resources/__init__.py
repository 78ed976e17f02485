"""Bundled assets (demo model and data, icons), installed as ``q8studio.resources``."""
