"""LGWAN and LGPKI. For now: a minimal organisation CA issuing 職責 certificates."""
