"""PySide6 widgets; all numerics are delegated to :mod:`q8studio.core`."""
