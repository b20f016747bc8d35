"""Using a stored run: classifying image files (predict), exporting it (export) and evaluating it again
(evaluate)."""
