"""Provider connections: link (OAuth, app-obtained tokens, Terra widget), list, disconnect."""
