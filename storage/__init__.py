"""The database side of marketbot: settings, engine, catalog, ingestion and dataset access."""
