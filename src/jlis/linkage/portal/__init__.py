"""マイナポータル: the resident's own view, signed in with the card."""
