"""Analysis of predictions: evaluation reports (evaluation)."""
