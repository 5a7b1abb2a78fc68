"""The worker's web views: health, readiness, metrics, progress, configuration, schemas, dead letters and
replays, and the OpenAPI document (``app.api.openapi``); one module per resource, each thin around ``app``."""
