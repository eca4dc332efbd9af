"""Web mini-apps from outside organisations: registered, reviewed and launched in a frame, never imported."""
