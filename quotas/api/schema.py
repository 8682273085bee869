def canonical_paths(endpoints, **kwargs):
    """drf-spectacular preprocessing hook: every path also answers with a trailing slash (the
    URL patterns end in '/?'); the schema names each one once, without it."""
    return [(path.rstrip("/"), regex, method, view) for path, regex, method, view in endpoints]
