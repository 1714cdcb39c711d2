"""Domain services: what Muster does, independent of which trigger asked."""
