"""Hypothesis strategies that build problem instances satisfying each theorem's assumptions."""
