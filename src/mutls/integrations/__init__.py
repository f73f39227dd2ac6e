"""Helpers for Flask, Django and Starlette/FastAPI."""
