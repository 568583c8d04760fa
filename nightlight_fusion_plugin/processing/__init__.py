"""QGIS Processing provider `nightlightfusion`: thin algorithms over core."""
