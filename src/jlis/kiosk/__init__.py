"""コンビニ交付: the kiosk, the 証明書交付センター and the municipal certificate servers."""
