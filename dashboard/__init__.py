"""CalLMIP Explorer: metrics, views, app, command line and exporter."""
