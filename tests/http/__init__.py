"""Tests of the HTTP side's descriptions of itself: the OpenAPI document
(``/openapi.json``) and the Prometheus metrics (``/metrics``)."""
