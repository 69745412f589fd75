"""metricstore package."""
