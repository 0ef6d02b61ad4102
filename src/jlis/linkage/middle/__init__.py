"""自治体中間サーバー: 団体内統合宛名番号, replicas (副本) and automatic answers."""
