"""Certificate PDFs: layout, anti-forgery, PAdES signature, public verification."""
