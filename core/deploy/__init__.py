"""Using a stored run: classifying image files (predict) and exporting it (export)."""
