"""Per-scene and per-job reports (JSON for machines, text for people)."""
