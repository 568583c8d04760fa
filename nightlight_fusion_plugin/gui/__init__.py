"""QGIS dialog, task wiring and styling: thin, over Processing and core."""
