"""証明書交付センター: the issuance center between the kiosks and the municipal certificate servers."""
