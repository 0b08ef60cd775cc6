"""The clinic on the web: FastAPI, a JSON API under /api/v1 and server-rendered pages."""
