"""The hub's own web pages: browser sessions, CSRF, security headers, templates, static assets and the
three consoles (guard, occupant, control room) built on the same API and realtime gateway."""
