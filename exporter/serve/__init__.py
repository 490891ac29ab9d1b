"""Exposition: the Prometheus collector, the HTTP endpoints, the landing page, the API and webhooks."""
