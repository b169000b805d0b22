"""Analysis tools for marketbot: the plugin contract, the registry and the built-in tools."""
