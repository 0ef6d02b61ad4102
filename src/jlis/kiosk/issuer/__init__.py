"""The municipal certificate server (証明発行サーバ): the data behind each certificate and its rules."""
