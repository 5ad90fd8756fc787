"""Personal data this module holds: registered with `app.privacy.registry`."""
