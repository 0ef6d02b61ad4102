"""The kiosk screen (``/kiosk``): the 行政サービス of a multifunction copier, its simulated card
reader, and its line to the 証明書交付センター (``port`` + ``adapter``). See docs/kiosk-screen.md."""
