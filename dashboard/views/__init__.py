"""One module per dashboard view; each exposes render(api, ...) and only lays out widgets."""
