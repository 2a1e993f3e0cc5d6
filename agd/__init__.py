"""Automatic Gradient Descent."""
