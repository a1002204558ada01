"""The Marathon-style framework for long-running services (Marathon REST API v2)."""
