"""Loading and checking configuration files (TOML + JSON Schema + what a schema cannot see)."""
