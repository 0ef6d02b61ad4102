"""自治体基盤クラウド and 被災者支援: register backups, disasters, the victim register, 罹災証明書."""
