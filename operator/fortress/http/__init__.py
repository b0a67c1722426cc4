"""The HTTP API (aiohttp): routes per subsystem, bearer-token auth with scopes, errors, OpenAPI."""
