"""Celery task shells: fetch, call the core, act, record."""
