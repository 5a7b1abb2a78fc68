"""The management API's pure parts: errors, authentication, paging, the configuration view, OpenAPI.

The Faust views that serve it are in :mod:`agents.api` (one module per resource).
"""
