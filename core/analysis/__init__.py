"""Analysis of predictions: evaluation reports (evaluation) and where a run's evaluation samples live (samples)."""
