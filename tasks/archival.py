"""archival tasks (being built)."""
